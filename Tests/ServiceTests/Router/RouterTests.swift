import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Shared
import TestSupport
import Testing

@testable import Router

/// The router against stand-in upstreams: streaming, limits, failures, request ids, TLS.
@Suite("Router", .serialized)
struct RouterTests {
    static func environment(all upstream: String, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = ["VACANCY_BOOKINGS_URL": upstream, "VACANCY_AVAILABILITY_URL": upstream, "VACANCY_FANOUT_URL": upstream]
        environment.merge(extra) { $1 }
        return environment
    }

    @Test func anEventCrossesTheRouterWhileTheUpstreamStreamStaysOpen() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL)) { routerURL, _ in
                let stream = try await EventStreamClient.open(routerURL + "/events?topic=availability")
                defer { stream.close() }
                #expect(stream.status == 200)
                #expect(stream.headers.first(name: "content-type") == "text/event-stream")
                var latencies: [Duration] = []
                for n in 1...5 {
                    let sent = ContinuousClock.now
                    upstream.push("id: \(n)\nevent: availability.updated\ndata: {\"n\":\(n)}\n\n")
                    let event = await stream.next(within: 2)
                    latencies.append(ContinuousClock.now - sent)
                    // Buffering would hold the event until the stream ends, which it never does here.
                    #expect(event?.id == "\(n)")
                    #expect(event?.data == "{\"n\":\(n)}")
                }
                #expect(stream.hasEnded == false)
                print("router streaming: upstream write → client read", latencies.map { "\($0)" }.joined(separator: ", "))
            }
        }
    }

    @Test func aClientThatGoesAwayClosesTheUpstreamStream() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL)) { routerURL, _ in
                let stream = try await EventStreamClient.open(routerURL + "/events?topic=availability")
                await expectEventually { upstream.openStreams == 1 }
                stream.close()
                // The upstream learns of the close when its next write fails.
                let closed = await eventually(within: 5) {
                    upstream.push(": tick\n\n")
                    return upstream.openStreams == 0
                }
                #expect(closed)
            }
        }
    }

    /// A browser that stops acknowledging (gone without a word, or its window shut) is
    /// dropped once data has waited unacknowledged for the send timeout, and its upstream
    /// stream with it, instead of after the kernel's quarter of an hour of retries.
    @Test func aClientThatStopsAcknowledgingIsDroppedAfterTheSendTimeout() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            let environment = Self.environment(all: upstreamURL, ["VACANCY_SEND_TIMEOUT_SECONDS": "2"])
            try await withRouter(environment: environment) { routerURL, _ in
                let reading = try await EventStreamClient.open(routerURL + "/events?topic=availability")
                let stuck = try RawSocket.stuck(at: routerURL, path: "/events?topic=availability")
                await expectEventually(within: 15) { upstream.openStreams == 2 }
                // 400 KB: enough to shut the stuck client's 4 KB window.
                for n in 1...200 { upstream.push("id: \(n)\ndata: " + String(repeating: "x", count: 2000) + "\n\n") }
                #expect(await reading.collect(200, within: 10).last?.id == "200", "the reading client gets everything")
                let dropped = await eventually(within: 15) {
                    upstream.push(": tick\n\n")
                    return upstream.openStreams == 1
                }
                #expect(dropped, "the stream nobody acknowledges is dropped, upstream too")
                upstream.push("id: 201\ndata: after\n\n")
                #expect(await reading.next(within: 2)?.id == "201", "the reading client keeps its stream")
                reading.close()
                stuck.close()
            }
        }
    }

    @Test func aBodyOverTheLimitIs413AndNeverReachesTheUpstream() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL, ["VACANCY_MAX_BODY_BYTES": "1024"])) { routerURL, _ in
                let small = try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", body: String(repeating: "x", count: 1024))
                #expect(small.status == 201)
                #expect(small.string("body_bytes") == "1024")
                let large = try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", body: String(repeating: "x", count: 1025))
                #expect(large.status == 413)
                #expect(large.contentType == "application/problem+json")
                #expect(large.string("type") == Problem.typeBase + "body-too-large")
                // Without a length up front (chunked), the limit holds while reading.
                var request = HTTPClientRequest(url: routerURL + "/api/v1/bookings")
                request.method = .POST
                request.headers.add(name: "Connection", value: "close")
                let chunks = (0..<8).map { _ in ByteBuffer(string: String(repeating: "y", count: 512)) }
                request.body = .stream(chunks.async, length: .unknown)
                let chunked = try await TestHTTP.client.execute(request, timeout: .seconds(10))
                _ = try await chunked.body.collect(upTo: 1 << 20)
                #expect(chunked.status.code == 413)
                #expect(upstream.echoCalls == 1)
            }
        }
    }

    @Test func aFloodingClientGets429WithRetryAfterAndStreamsCountSeparately() async throws {
        let upstream = FakeUpstream()
        let limits = [
            "VACANCY_RATE_API_PER_SECOND": "1", "VACANCY_RATE_API_BURST": "5", "VACANCY_RATE_SSE_PER_SECOND": "1",
            "VACANCY_RATE_SSE_BURST": "2",
        ]
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL, limits)) { routerURL, _ in
                var statuses: [Int] = []
                for _ in 0..<8 { statuses.append(try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar").status) }
                #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
                #expect(statuses.suffix(2).allSatisfy { $0 == 429 })
                let limited = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar")
                #expect(limited.status == 429)
                #expect(limited.contentType == "application/problem+json")
                #expect(Int(limited.headers.first(name: "retry-after") ?? "") ?? 0 >= 1)
                // API calls used up; opening streams has its own bucket.
                let first = try await EventStreamClient.open(routerURL + "/events?topic=a")
                let second = try await EventStreamClient.open(routerURL + "/events?topic=b")
                let third = try await EventStreamClient.open(routerURL + "/events?topic=c")
                defer { for stream in [first, second, third] { stream.close() } }
                #expect(first.status == 200)
                #expect(second.status == 200)
                #expect(third.status == 429)
                // The page itself is not limited.
                #expect(try await TestHTTP.send(.GET, routerURL + "/healthz").status == 200)
            }
        }
    }

    @Test func requestIDsAreKeptOrMadeAndReachTheUpstream() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL)) { routerURL, _ in
                let kept = try await TestHTTP.send(
                    .POST, routerURL + "/api/v1/bookings", headers: [("X-Request-Id", "trace-abc-123")], body: "{}")
                #expect(kept.headers.first(name: "x-request-id") == "trace-abc-123")
                #expect(kept.string("request_id") == "trace-abc-123")
                #expect(kept.string("forwarded_for") == "127.0.0.1")
                let made = try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", body: "{}")
                let id = try #require(made.headers.first(name: "x-request-id"))
                #expect(id.count >= 16)
                #expect(made.string("request_id") == id)
            }
        }
    }

    @Test func demoModeAddsTheDevKeyOnlyToBookingsCallsWithoutCredentials() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            let environment = Self.environment(all: upstreamURL, ["VACANCY_DEMO": "1", "VACANCY_DEMO_KEY": "demo-key-42"])
            try await withRouter(environment: environment) { routerURL, _ in
                let anonymous = try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", body: "{}")
                #expect(anonymous.string("authorization") == "Bearer demo-key-42")
                let own = try await TestHTTP.send(
                    .POST, routerURL + "/api/v1/bookings", headers: [("Authorization", "Bearer mine")], body: "{}")
                #expect(own.string("authorization") == "Bearer mine")
                let config = try await TestHTTP.send(.GET, routerURL + "/config.json")
                #expect(config.json["demo"] as? Bool == true)
            }
            try await withRouter(environment: Self.environment(all: upstreamURL)) { routerURL, _ in
                let anonymous = try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", body: "{}")
                #expect(anonymous.string("authorization") == "")
                let config = try await TestHTTP.send(.GET, routerURL + "/config.json")
                #expect(config.json["demo"] as? Bool == false)
            }
        }
    }

    @Test func aDownUpstreamIs503AtOnceAndTrafficResumesWhenItIsBack() async throws {
        let port = try freePort()
        let upstream = FakeUpstream()
        try await withRouter(environment: Self.environment(all: "http://127.0.0.1:\(port)")) { routerURL, _ in
            let started = ContinuousClock.now
            let down = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar")
            let elapsed = ContinuousClock.now - started
            #expect(down.status == 503)
            #expect(down.contentType == "application/problem+json")
            #expect(down.string("type") == Problem.typeBase + "upstream-unavailable")
            #expect(down.headers.first(name: "retry-after") == "1")
            #expect(elapsed < .seconds(2), "a down upstream is answered without waiting out a connect timeout (\(elapsed))")
            let ready = try await TestHTTP.send(.GET, routerURL + "/readyz")
            #expect(ready.status == 503)
            try await withFakeUpstream(upstream, port: port) { _ in
                let back = await eventually(within: 5) {
                    (try? await TestHTTP.send(.GET, routerURL + "/api/v1/calendar"))?.status == 200
                }
                #expect(back, "the router serves the upstream again without a restart")
                let readyAgain = try await TestHTTP.send(.GET, routerURL + "/readyz")
                #expect(readyAgain.status == 200)
            }
        }
    }

    @Test func aSlowUpstreamIs504AndOneThatHangsUpIs502() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL, ["VACANCY_UPSTREAM_TIMEOUT_MS": "300"])) { routerURL, _ in
                let slow = try await TestHTTP.send(.GET, routerURL + "/api/v1/availability/slow")
                #expect(slow.status == 504)
                #expect(slow.string("type") == Problem.typeBase + "upstream-timeout")
            }
        }
        try await withHangingUpUpstream { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL)) { routerURL, _ in
                let broken = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar")
                #expect(broken.status == 502)
                #expect(broken.contentType == "application/problem+json")
                #expect(broken.string("type") == Problem.typeBase + "bad-gateway")
            }
        }
    }

    @Test func corsAnswersOnlyTheAllowList() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            let environment = Self.environment(all: upstreamURL, ["VACANCY_CORS_ORIGINS": "https://calendar.example"])
            try await withRouter(environment: environment) { routerURL, _ in
                let allowed = try await TestHTTP.send(
                    .GET, routerURL + "/api/v1/calendar", headers: [("Origin", "https://calendar.example")])
                #expect(allowed.headers.first(name: "access-control-allow-origin") == "https://calendar.example")
                let other = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar", headers: [("Origin", "https://evil.example")])
                #expect(other.headers.first(name: "access-control-allow-origin") == nil)
                let preflight = try await TestHTTP.send(
                    .OPTIONS, routerURL + "/api/v1/bookings",
                    headers: [("Origin", "https://calendar.example"), ("Access-Control-Request-Method", "POST")])
                #expect(preflight.status == 204)
                #expect(preflight.headers.first(name: "access-control-allow-methods")?.contains("POST") == true)
                let refused = try await TestHTTP.send(
                    .OPTIONS, routerURL + "/api/v1/bookings",
                    headers: [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
                #expect(refused.status == 403)
                #expect(refused.contentType == "application/problem+json")
                #expect(upstream.echoCalls == 0)
            }
        }
    }

    @Test func tlsPortNegotiatesHTTP2AndStreamsThrough() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            try await withRouter(environment: Self.environment(all: upstreamURL), tls: true) { _, tlsURL in
                let secure = try #require(tlsURL)
                let stream = try await EventStreamClient.open(secure + "/events?topic=availability")
                defer { stream.close() }
                #expect(stream.version == .http2)
                await expectEventually { upstream.openStreams == 1 }
                upstream.push("id: 7\nevent: availability.updated\ndata: {}\n\n")
                #expect(await stream.next(within: 2)?.id == "7")
            }
        }
    }

    @Test func thePageIsServedAndUnknownPathsAreProblems() async throws {
        let upstream = FakeUpstream()
        try await withFakeUpstream(upstream) { upstreamURL in
            let webRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../Services/Router/Web")
                .standardized.path
            try await withRouter(environment: Self.environment(all: upstreamURL, ["VACANCY_WEB_ROOT": webRoot])) { routerURL, _ in
                let page = try await TestHTTP.send(.GET, routerURL + "/")
                #expect(page.status == 200)
                #expect(page.contentType.hasPrefix("text/html"))
                #expect(page.text.contains("<title>"))
                let missing = try await TestHTTP.send(.GET, routerURL + "/no/such/thing")
                #expect(missing.status == 404)
                #expect(missing.contentType == "application/problem+json")
            }
        }
    }
}

extension Array where Element: Sendable {
    /// The elements as an async sequence (a request body stream).
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
