import Foundation
import Shared
import TestSupport
import Testing

@testable import Router

/// Several instances of a service behind one router (against stand-in upstreams): API calls
/// round robin over the healthy ones, event streams to the one with the fewest open, a
/// failed connect retried once elsewhere only when the call is safe to repeat, each instance's
/// health its own, and lists that are not lists of base URLs refused at start-up.
@Suite struct RouterInstancesTests {
    static func environment(_ urls: String, _ extra: [String: String] = [:]) -> [String: String] {
        RouterTests.environment(all: urls, extra)
    }

    static func post(_ routerURL: String, key: String? = nil) async throws -> TestResponse {
        var headers = [("Content-Type", "application/json")]
        if let key { headers.append(("Idempotency-Key", key)) }
        return try await TestHTTP.send(.POST, routerURL + "/api/v1/bookings", headers: headers, body: "{}")
    }

    @Test func callsGoRoundRobinAndStreamsToTheInstanceWithFewest() async throws {
        let first = FakeUpstream()
        let second = FakeUpstream()
        try await withFakeUpstream(first) { firstURL in
            try await withFakeUpstream(second) { secondURL in
                // One health check, at start (with a 30 s timeout): a check that timed out on a
                // busy machine would take an instance out of the rotation this test counts.
                let crowdAllowed = [
                    "VACANCY_RATE_SSE_PER_SECOND": "1000", "VACANCY_RATE_SSE_BURST": "1000", "VACANCY_UPSTREAM_HEALTH_MS": "30000",
                ]
                try await withRouter(environment: Self.environment("\(firstURL), \(secondURL)/", crowdAllowed)) { routerURL, _ in
                    for _ in 0..<10 { #expect(try await Self.post(routerURL).status == 201) }
                    #expect(first.echoCalls == 5 && second.echoCalls == 5, "\(first.echoCalls) and \(second.echoCalls)")

                    var streams: [EventStreamClient] = []
                    for _ in 0..<3 { streams.append(try await EventStreamClient.open(routerURL + "/events?topic=availability")) }
                    await expectEventually(within: 3) { first.openStreams == 2 && second.openStreams == 1 }
                    // The second instance's stream ends: the next one goes there (fewest open again).
                    // The router learns of the client's going when it next writes to it.
                    streams[1].close()
                    await expectEventually(within: 5, "the router counts the stream closed") {
                        second.push(": ping\n\n")
                        return
                            (try? await PrometheusText.fetch(routerURL + "/metrics").value(
                                #"vacancy_router_open_streams{instance="\#(secondURL)",upstream="fanout"}"#)) == 0
                    }
                    streams.append(try await EventStreamClient.open(routerURL + "/events?topic=availability"))
                    let open = try await PrometheusText.fetch(routerURL + "/metrics")
                    #expect(open.value(#"vacancy_router_open_streams{instance="\#(firstURL)",upstream="fanout"}"#) == 2)
                    #expect(
                        open.value(#"vacancy_router_open_streams{instance="\#(secondURL)",upstream="fanout"}"#) == 1,
                        "the new stream went to the second")
                    for stream in streams { stream.close() }
                    await expectEventually(within: 5, "the router counts every stream closed") {
                        first.push(": ping\n\n")
                        second.push(": ping\n\n")
                        return (try? await PrometheusText.fetch(routerURL + "/metrics").sum("vacancy_router_open_streams")) == 0
                    }

                    // A crowd arriving at once is spread evenly: each stream counts from the moment it is sent.
                    let crowd = try await withThrowingTaskGroup(of: EventStreamClient.self) { group in
                        for _ in 0..<40 { group.addTask { try await EventStreamClient.open(routerURL + "/events?topic=availability") } }
                        return try await group.reduce(into: [EventStreamClient]()) { $0.append($1) }
                    }
                    #expect(crowd.allSatisfy { $0.status == 200 })
                    let spread = try await PrometheusText.fetch(routerURL + "/metrics")
                    #expect(spread.value(#"vacancy_router_open_streams{instance="\#(firstURL)",upstream="fanout"}"#) == 20)
                    #expect(spread.value(#"vacancy_router_open_streams{instance="\#(secondURL)",upstream="fanout"}"#) == 20)
                    for stream in crowd { stream.close() }

                    let metrics = try await PrometheusText.fetch(routerURL + "/metrics")
                    #expect(
                        metrics.value(
                            #"vacancy_router_upstream_calls_total{instance="\#(firstURL)",outcome="answered",upstream="bookings"}"#) == 5)
                    #expect(metrics.value(#"vacancy_router_upstream_up{instance="\#(secondURL)",upstream="bookings"}"#) == 1)
                }
            }
        }
    }

    /// A router that saw the instance on `deadPort` answer its first health check (next
    /// check a minute away), run after that instance has gone: its first call in turn goes there.
    static func withRouterAfterAnInstanceWent<T: Sendable>(
        deadPort: Int, liveURL: String, _ body: @Sendable (_ routerURL: String) async throws -> T
    ) async throws -> T {
        let going = Task { try await withFakeUpstream(FakeUpstream(), port: deadPort) { _ in try await Task.sleep(for: .seconds(3600)) } }
        await expectEventually(within: 5) { (try? await TestHTTP.send(.GET, "http://127.0.0.1:\(deadPort)/healthz"))?.status == 200 }
        return try await withRouter(
            environment: Self.environment("http://127.0.0.1:\(deadPort),\(liveURL)", ["VACANCY_UPSTREAM_HEALTH_MS": "60000"])
        ) { routerURL, _ in
            await expectEventually(within: 5, "the router has checked both instances") {
                let up = try? await PrometheusText.fetch(routerURL + "/metrics").sum("vacancy_router_upstream_up")
                let ready = try? await TestHTTP.send(.GET, routerURL + "/readyz")
                return up == 6 && ready?.status == 200
            }
            try await Task.sleep(for: .milliseconds(300))
            going.cancel()
            _ = await going.result
            await expectEventually(within: 5, "the instance is gone") {
                (try? await TestHTTP.send(.GET, "http://127.0.0.1:\(deadPort)/healthz")) == nil
            }
            return try await body(routerURL)
        }
    }

    @Test func aFailedConnectIsRetriedOnceElsewhereOnlyWhenTheCallIsSafeToRepeat() async throws {
        let live = FakeUpstream()
        let deadPort = try freePort()
        let dead = "http://127.0.0.1:\(deadPort)"
        try await withFakeUpstream(live) { liveURL in
            // A POST without a key is not repeated: 503, and nothing reached the live instance.
            try await Self.withRouterAfterAnInstanceWent(deadPort: deadPort, liveURL: liveURL) { routerURL in
                let refused = try await Self.post(routerURL)
                #expect(refused.status == 503 && refused.string("type") == Problem.typeBase + "upstream-unavailable")
                #expect(live.echoCalls == 0)
                // The gone instance is marked down at once: the next calls go to the live one.
                #expect(try await Self.post(routerURL).status == 201)
                #expect(live.echoCalls == 1)
                let metrics = try await PrometheusText.fetch(routerURL + "/metrics")
                #expect(metrics.value(#"vacancy_router_upstream_up{instance="\#(dead)",upstream="bookings"}"#) == 0)
                #expect(metrics.value(#"vacancy_router_retries_total{upstream="bookings"}"#) == nil)
            }
            // With an Idempotency-Key: tried on the gone instance, then once on the live one.
            try await Self.withRouterAfterAnInstanceWent(deadPort: deadPort, liveURL: liveURL) { routerURL in
                #expect(try await Self.post(routerURL, key: UUID().uuidString).status == 201)
                #expect(live.echoCalls == 2)
                let metrics = try await PrometheusText.fetch(routerURL + "/metrics")
                #expect(metrics.value(#"vacancy_router_retries_total{upstream="bookings"}"#) == 1)
            }
            // A GET likewise.
            try await Self.withRouterAfterAnInstanceWent(deadPort: deadPort, liveURL: liveURL) { routerURL in
                let read = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar")
                #expect(read.status == 200, "a GET is repeated on the live instance")
                let metrics = try await PrometheusText.fetch(routerURL + "/metrics")
                #expect(metrics.value(#"vacancy_router_retries_total{upstream="availability"}"#) == 1)
            }
            // Both down: 503 at once, never a hang; the health check brings one back.
            try await withRouter(environment: Self.environment("\(dead),http://127.0.0.1:\(try freePort())")) { routerURL, _ in
                await expectEventually(within: 5) { (try? await TestHTTP.send(.GET, routerURL + "/readyz"))?.status == 503 }
                let started = ContinuousClock.now
                #expect(try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar").status == 503)
                #expect(ContinuousClock.now - started < .seconds(2))
                let back = FakeUpstream()
                try await withFakeUpstream(back, port: deadPort) { _ in
                    await expectEventually(within: 5, "the health check brings the instance back") {
                        (try? await TestHTTP.send(.GET, routerURL + "/api/v1/calendar"))?.status == 200
                    }
                }
            }
        }
    }

    @Test(arguments: [
        ("http://a:8081,,http://b:8081", "an entry is empty"),
        (" , ", "an entry is empty"),
        ("http://a:8081,ftp://b", "\"ftp://b\" is not one"),
        ("http://a:8081,http://a:8081/", "named twice"),
        ("http://a:8081/api", "is not one"),
        ("bookings:8081", "is not one"),
    ])
    func aListThatIsNotOneOfBaseURLsStopsStartUp(value: String, reason: String) {
        var reader = ConfigReader(environment: ["VACANCY_BOOKINGS_URL": value])
        let error = #expect(throws: ConfigReader.InvalidValue.self) { _ = try RouterConfiguration(reader: &reader) }
        #expect(error?.name == "VACANCY_BOOKINGS_URL")
        #expect(error?.description.contains(reason) == true, "\(error?.description ?? "")")
    }
}
