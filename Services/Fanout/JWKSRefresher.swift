import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import Shared

/// Keeps the verifier's JWKS keys current: fetches `VACANCY_TOKEN_JWKS_URL` at start-up,
/// then every `interval`, and at once (at most every `minimumSpacing`) when a token names a
/// `kid` the set lacks, as happens just after the identity provider rotates its key. A
/// failed fetch keeps the keys already installed and is retried after `retry`.
struct JWKSRefresher: Service {
    let url: String
    let interval: Duration
    var minimumSpacing: Duration = .seconds(1)
    var retry: Duration = .seconds(5)
    let verifier: SubscriberTokenVerifier
    let metrics: AppMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastFetch = ContinuousClock.now - minimumSpacing
            while !Task.isCancelled {
                let spacing = lastFetch + minimumSpacing - ContinuousClock.now
                if spacing > .zero { try? await Task.sleep(for: spacing) }
                lastFetch = ContinuousClock.now
                let fetched = await refresh()
                await verifier.unknownKeySeen.wait(upTo: fetched ? interval : min(retry, interval))
            }
        }
    }

    /// One fetch and install; whether it succeeded.
    @discardableResult
    func refresh() async -> Bool {
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/jwk-set+json, application/json")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else { throw FetchFailure(status: Int(response.status.code)) }
            let (installed, skipped) = try await verifier.install(jwks: Data(body.readableBytesView))
            metrics.counter("vacancy_fanout_jwks_fetches_total", [("outcome", "ok")]).increment()
            logger.debug("jwks fetched", metadata: ["kids": "\(installed)", "skipped": "\(skipped)"])
            if !skipped.isEmpty {
                logger.warning("jwks keys skipped: only ES256 and EdDSA keys with a kid are used", metadata: ["skipped": "\(skipped)"])
            }
            return true
        } catch {
            if Task.isCancelled { return false }  // shutting down
            metrics.counter("vacancy_fanout_jwks_fetches_total", [("outcome", "failed")]).increment()
            logger.error(
                "jwks fetch failed; keeping the keys already installed",
                metadata: ["url": "\(url)", "error": "\(String(reflecting: error))"])
            return false
        }
    }

    struct FetchFailure: Error, CustomStringConvertible {
        let status: Int
        var description: String { "the JWKS URL answered \(status)" }
    }
}
