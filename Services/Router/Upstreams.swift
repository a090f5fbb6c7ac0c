import AsyncHTTPClient
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Shared
import Synchronization

/// The services behind the router and whether each answers: a failed connect marks one
/// down at once (so further calls get a quick 503 instead of waiting to connect), and the
/// health check brings it back within one interval of it answering again.
final class Upstreams: Sendable {
    struct Upstream: Sendable {
        let name: String
        let baseURL: String
    }

    private let upstreams: [String: Upstream]
    private let healthy: Mutex<[String: Bool]>
    private let metrics: AppMetrics

    init(_ urls: [String: String], metrics: AppMetrics) {
        self.metrics = metrics
        upstreams = urls.reduce(into: [:]) { $0[$1.key] = Upstream(name: $1.key, baseURL: $1.value) }
        // Optimistic at start: the first failed connect says otherwise soon enough.
        healthy = Mutex(urls.mapValues { _ in true })
        for name in urls.keys { metrics.gauge("vacancy_router_upstream_up", [("upstream", name)]).record(1) }
    }

    subscript(name: String) -> Upstream? { upstreams[name] }
    var all: [Upstream] { upstreams.values.sorted { $0.name < $1.name } }

    func isHealthy(_ name: String) -> Bool {
        healthy.withLock { $0[name] ?? false }
    }

    /// Records what a call or a health check saw; logs and counts only the changes.
    func mark(_ name: String, healthy isUp: Bool, logger: Logger) {
        let changed = healthy.withLock { states in
            defer { states[name] = isUp }
            return states[name] != isUp
        }
        guard changed else { return }
        metrics.gauge("vacancy_router_upstream_up", [("upstream", name)]).record(isUp ? 1 : 0)
        if isUp {
            logger.info("upstream is back", metadata: ["upstream": .string(name)])
        } else {
            logger.warning("upstream is down", metadata: ["upstream": .string(name)])
        }
    }
}

/// Asks every upstream's `/healthz` each interval and records the answer.
struct UpstreamHealthCheck: Service {
    let upstreams: Upstreams
    let client: HTTPClient
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await withTaskGroup(of: Void.self) { group in
                    for upstream in upstreams.all {
                        group.addTask { await check(upstream) }
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    private func check(_ upstream: Upstreams.Upstream) async {
        let request = HTTPClientRequest(url: upstream.baseURL + "/healthz")
        do {
            let response = try await client.execute(request, timeout: .milliseconds(max(500, interval.milliseconds)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            upstreams.mark(upstream.name, healthy: response.status == .ok, logger: logger)
        } catch {
            upstreams.mark(upstream.name, healthy: false, logger: logger)
        }
    }
}
