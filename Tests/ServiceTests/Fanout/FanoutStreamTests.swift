import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Shared
import Synchronization
import TestSupport
import Testing

@testable import Fanout

@Suite(.timeLimit(.minutes(2))) struct FanoutStreamTests {
    @Test func aBookingReachesHTTP1AndHTTP2SubscribersOfItsTopicsOnly() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db) { _ in
                    try await withFanout(on: db, tls: true) { fanout in
                        let session = try await bookings.createSession(daysAhead: 4)
                        let other = try await bookings.createSession(daysAhead: 4, location: "Location B")
                        try await expectEventually(within: 3) { try await db.changesDrained() }
                        // From the log's head now: the fan-out may not have read the sessions' own
                        // events yet (a stream opened without an id starts at the fan-out's head).
                        let head = try await db.scalar("SELECT max(id)::int FROM events")
                        let from = "&last_event_id=\(head)"

                        let plain = try await EventStreamClient.open(fanout.events(["availability.session.\(session)"], query: from))
                        let secureURL = try #require(fanout.secureEvents(["availability.location.Location A"], query: from))
                        let secure = try await EventStreamClient.open(secureURL)
                        let elsewhere = try await EventStreamClient.open(fanout.events(["availability.session.\(other)"], query: from))
                        #expect(plain.status == 200)
                        #expect(plain.headers.first(name: "content-type") == "text/event-stream")
                        #expect(plain.headers.first(name: "cache-control") == "no-cache")
                        #expect(plain.headers.first(name: "x-accel-buffering") == "no")
                        #expect(secure.status == 200)
                        #expect(secure.version == .http2, "TLS with ALPN negotiates HTTP/2")
                        #expect(plain.version == .http1_1)

                        #expect(try await bookings.book(session: session, adults: 2).status == 201)
                        for stream in [plain, secure] {
                            let event = try #require(await stream.next(within: 5))
                            #expect(event.event == "availability.updated")
                            let payload = try #require(try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])
                            #expect(payload["session_id"] as? String == session)
                            #expect(payload["booked"] as? Int == 2)
                            let newest = try await db.scalar("SELECT max(id)::int FROM events WHERE type = 'availability.updated'")
                            #expect(event.id.flatMap { Int($0) } == newest)
                        }
                        #expect(await elsewhere.next(within: 1.5) == nil, "a subscriber of another session gets nothing")
                        for stream in [plain, secure, elsewhere] { stream.close() }
                    }
                }
            }
        }
    }

    /// Over HTTP/2 the fan-out serves streams itself (no task per stream) and hands every
    /// other request to the router: both must work on one connection, and a graceful
    /// shutdown must end the streams cleanly and close the connection.
    @Test func http2ServesStreamsAndRouterRequestsAndEndsStreamsCleanlyAtShutdown() async throws {
        let streams = try await TestDatabase.with { db in
            try await withFanout(on: db, tls: true) { fanout in
                let secure = try #require(fanout.tlsURL)
                var streams: [EventStreamClient] = []
                for topic in ["availability", "availability.course.c1", "availability.location.Location A"] {
                    streams.append(try await EventStreamClient.open(try #require(fanout.secureEvents([topic]))))
                }
                #expect(streams.map(\.status) == [200, 200, 200])
                #expect(streams.allSatisfy { $0.version == .http2 })

                let refused = try await EventStreamClient.open(try #require(fanout.secureEvents(["availability.tomorrow"])))
                #expect(refused.version == .http2)
                #expect(refused.status == 400)
                #expect(refused.headers.first(name: "content-type") == "application/problem+json")
                #expect(refused.refusalJSON["status"] as? Int == 400)

                let health = try await EventStreamClient.open(secure + "/healthz")
                #expect(health.version == .http2)
                #expect(health.status == 200)
                let missing = try await EventStreamClient.open(secure + "/nowhere")
                #expect(missing.status == 404)
                #expect(missing.headers.first(name: "content-type") == "application/problem+json")

                #expect(try await Self.metric("vacancy_fanout_subscribers{transport=\"h2\"}", at: fanout.baseURL) == 3)
                #expect(streams.allSatisfy { !$0.hasEnded })
                return streams
            }
        }
        // The fan-out has shut down: each stream ended cleanly (an error would leave it open).
        for stream in streams {
            await expectEventually(within: 5, "HTTP/2 stream ended at shutdown") { stream.hasEnded }
        }
    }

    /// Where a delivery's time goes, for operators: each event's age when the follow read
    /// took it in (once per event), and each event loop's pass (what the first subscriber's
    /// write waits behind the last's).
    @Test func theReadLagIsMeasuredOncePerEventAndEachPassItsDuration() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db) { fanout in
                let stream = try await EventStreamClient.open(fanout.events(["availability"]))
                let passesBefore = try await Self.metric("vacancy_fanout_pass_seconds_count", at: fanout.baseURL)
                let seen = try await db.appendEvents(5)
                #expect(await stream.collect(5).compactMap(\.id).compactMap(Int64.init) == seen)
                stream.close()
                #expect(try await Self.metric("vacancy_fanout_read_lag_seconds_count", at: fanout.baseURL) == 5)
                #expect(try await Self.metric("vacancy_fanout_pass_seconds_count", at: fanout.baseURL) > passesBefore)
            }
        }
    }

    @Test func resumeIsExactFromMemoryFromTheTableAndResetsOutsideTheLog() async throws {
        try await TestDatabase.with { db in
            try await db.appendEvents(3)
            try await withFanout(on: db, configure: { $0.windowSize = 20 }) { fanout in
                let url = fanout.events(["availability"])
                let first = try await EventStreamClient.open(url)
                let seen = try await db.appendEvents(5)
                let read = await first.collect(5)
                #expect(read.compactMap(\.id).compactMap(Int64.init) == seen)
                first.close()
                let lastSeen = try #require(seen.last)

                // 50 more commit, mixed with events on a topic this subscriber does not follow.
                var missed: [Int64] = []
                for _ in 0..<5 {
                    missed += try await db.appendEvents(10)
                    try await db.appendEvents(3, topics: ["availability.location.Elsewhere"])
                }
                try await Task.sleep(for: .milliseconds(300))
                #expect(missed.count == 50)

                // The window (20 events) no longer reaches back: history comes from the table.
                let historyReads = #"vacancy_fanout_log_reads_total{purpose="history"}"#
                #expect(try await Self.metric(historyReads, at: fanout.baseURL) == 0, "the live stream read no history")
                let resumed = try await EventStreamClient.open(url, headers: [("Last-Event-ID", String(lastSeen))])
                let replay = await resumed.collect(51, within: 3)
                #expect(replay.compactMap(\.id).compactMap(Int64.init) == missed, "exactly the 50 missed, in order, no duplicates")
                resumed.close()
                #expect(try await Self.metric(historyReads, at: fanout.baseURL) == 1, "one page of history from the table")
                #expect(try await Self.metric(#"vacancy_fanout_log_reads_total{purpose="follow"}"#, at: fanout.baseURL) > 0)

                // From the query parameter, close to the head: served from memory.
                let recentStart = missed[40]
                let fromQuery = try await EventStreamClient.open(url + "&last_event_id=\(recentStart)")
                let recent = await fromQuery.collect(10, within: 3)
                #expect(recent.compactMap(\.id).compactMap(Int64.init) == Array(missed[41...]))
                fromQuery.close()

                // An id newer than the log's head: reset first, then live events.
                let future = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "999999")])
                let reset = try #require(await future.next(within: 3))
                #expect(reset.event == "reset")
                #expect(reset.data.contains("ahead_of_log"))
                let live = try await db.appendEvents(1)
                #expect(await future.next(within: 3)?.id == String(live[0]))
                future.close()

                // An id older than retention: reset.
                _ = try await db.database.query("DELETE FROM events WHERE id <= \(missed[20])")
                let pruned = try await EventStreamClient.open(url, headers: [("Last-Event-ID", "2")])
                let prunedReset = try #require(await pruned.next(within: 3))
                #expect(prunedReset.event == "reset")
                #expect(prunedReset.data.contains("behind_retention"))
                pruned.close()
            }
        }
    }

    /// After a restart every subscriber resumes at once; the fan-out starts with the newest
    /// events in memory so that wave needs no table reads. The rows are deleted before the
    /// resume here, so only the preloaded window can answer it.
    @Test func aFreshFanoutResumesFromItsPreloadedWindow() async throws {
        try await TestDatabase.with { db in
            let earlier = try await db.appendEvents(30)
            try await withFanout(on: db, configure: { $0.windowSize = 20 }) { fanout in
                _ = try await db.database.query("DELETE FROM events")
                let resumeAfter = earlier[14]
                let resumed = try await EventStreamClient.open(
                    fanout.events(["availability"]), headers: [("Last-Event-ID", String(resumeAfter))])
                let replay = await resumed.collect(15, within: 3)
                #expect(replay.compactMap(\.id).compactMap(Int64.init) == Array(earlier[15...]), "the newest 15, from memory")
                resumed.close()
                let reads = { (purpose: String) in
                    try await Self.metric("vacancy_fanout_log_reads_total{purpose=\"\(purpose)\"}", at: fanout.baseURL)
                }
                #expect(try await reads("window") == 1)
                #expect(try await reads("history") == 0, "the resume read no history from the table")
                #expect(try await reads("bounds") == 0, "nor the log's bounds")

                // Older than the window: the table is asked, finds nothing kept, and says reset.
                let tooOld = try await EventStreamClient.open(fanout.events(["availability"]), headers: [("Last-Event-ID", "3")])
                let reset = try #require(await tooOld.next(within: 3))
                #expect(reset.event == "reset")
                tooOld.close()
                #expect(try await reads("bounds") == 1, "the log's bounds were read to find the id gone")
            }
        }
    }

    @Test func everyEventIsSeenOnceAcrossAFanoutRestart() async throws {
        try await TestDatabase.with { db in
            let producer = Task {
                var ids: [Int64] = []
                for _ in 0..<60 {
                    ids += try await db.appendEvents(2)
                    try await Task.sleep(for: .milliseconds(25))
                }
                return ids
            }
            try await Task.sleep(for: .milliseconds(100))
            var seen: [Int64] = try await withFanout(on: db) { fanout in
                let stream = try await EventStreamClient.open(fanout.events(["availability"]))
                let before = await stream.collect(20)
                stream.close()
                return before.compactMap(\.id).compactMap(Int64.init)
            }
            // The fan-out is gone; events keep committing. A new instance, resumed.
            try await Task.sleep(for: .milliseconds(300))
            let lastSeen = try #require(seen.last)
            let produced = try await producer.value
            seen += try await withFanout(on: db) { fanout in
                let stream = try await EventStreamClient.open(
                    fanout.events(["availability"]), headers: [("Last-Event-ID", String(lastSeen))])
                let rest = await stream.collect(produced.filter { $0 > lastSeen }.count, within: 5)
                stream.close()
                return rest.compactMap(\.id).compactMap(Int64.init)
            }
            let first = try #require(seen.first)
            #expect(seen == produced.filter { $0 >= first }, "every id after the first seen exactly once, in order")
            #expect(Set(seen).count == seen.count)
        }
    }

    @Test func twoInstancesBothDeliverEveryEvent() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db) { one in
                try await withFanout(on: db) { two in
                    #expect(one.baseURL != two.baseURL)
                    let a = try await EventStreamClient.open(one.events(["availability"]))
                    let b = try await EventStreamClient.open(two.events(["availability"]))
                    let ids = try await db.appendEvents(20)
                    #expect(await a.collect(20).compactMap(\.id).compactMap(Int64.init) == ids)
                    #expect(await b.collect(20).compactMap(\.id).compactMap(Int64.init) == ids)
                    a.close()
                    b.close()
                }
            }
        }
    }

    @Test func privateTopicsNeedATokenThatNamesThem() async throws {
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withFanout(on: db) { fanout in
                    func mint(_ topics: [String], ttl: Int = 600) async throws -> String {
                        let topicList = topics.map { "\"\($0)\"" }.joined(separator: ",")
                        let response = try await bookings.post(
                            "/api/v1/tokens", #"{"sub": "alice", "topics": [\#(topicList)], "ttl_seconds": \#(ttl)}"#)
                        #expect(response.status == 201)
                        return try #require(response.string("token"))
                    }
                    let url = fanout.events(["user.alice"])
                    let none = try await EventStreamClient.open(url)
                    #expect(none.status == 401)
                    #expect(none.headers.first(name: "content-type") == "application/problem+json")

                    let bobs = try await mint(["user.bob"])
                    let wrong = try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(bobs)")])
                    #expect(wrong.status == 403)

                    let forged = try await TokenSigner(secret: "not-the-secret").sign(
                        SubscriberToken(sub: "alice", topics: ["user.alice"], expires: Date().addingTimeInterval(600)))
                    #expect(try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(forged)")]).status == 401)
                    let unsignedHeader = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString().replacingOccurrences(
                        of: "=", with: "")
                    let claims = forged.split(separator: ".")[1]
                    #expect(
                        try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(unsignedHeader).\(claims).")]).status
                            == 401)

                    let alices = try await mint(["user.alice"])
                    let viaHeader = try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(alices)")])
                    let viaCookie = try await EventStreamClient.open(url, headers: [("Cookie", "theme=dark; vacancy_token=\(alices)")])
                    let viaQuery = try await EventStreamClient.open(url + "&token=\(alices)")
                    #expect([viaHeader.status, viaCookie.status, viaQuery.status] == [Int](repeating: 200, count: 3))
                    let ids = try await db.appendEvents(1, topics: ["user.alice"], type: "booking.updated")
                    for stream in [viaHeader, viaCookie, viaQuery] {
                        #expect(await stream.next(within: 3)?.id == String(ids[0]))
                        stream.close()
                    }

                    let brief = try await mint(["user.alice"], ttl: 2)
                    let expiring = try await EventStreamClient.open(url, headers: [("Authorization", "Bearer \(brief)")])
                    #expect(expiring.status == 200)
                    let last = await expiring.next(within: 5)
                    #expect(last?.event == "expired")
                    await expectEventually(within: 2, "the stream ends after saying so") { expiring.hasEnded }
                }
            }
        }
    }

    @Test func adminFollowersGetMetricsSnapshotsAndNobodyElseDoes() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, configure: { $0.metricsInterval = .seconds(1) }) { fanout in
                let token = try await TokenSigner(secret: TokenSigner.developmentSecret).sign(
                    SubscriberToken(sub: "ops", topics: ["admin"], expires: Date().addingTimeInterval(600)))
                let admin = try await EventStreamClient.open(fanout.events(["admin"]), headers: [("Authorization", "Bearer \(token)")])
                let visitor = try await EventStreamClient.open(fanout.events(["availability"]))
                #expect(admin.status == 200)
                let delivered = try await db.appendEvents(3)
                #expect(await visitor.collect(3).compactMap(\.id).compactMap(Int64.init) == delivered)

                // One a second: a snapshot taken before the events went out may still be on its way.
                var figures: [String: Any] = [:]
                for _ in 0..<4 {
                    let snapshot = try #require(await admin.next(within: 3))
                    #expect(snapshot.event == "metrics")
                    #expect(snapshot.id == nil, "a snapshot is not part of the log, so it carries no id")
                    figures = try #require(try JSONSerialization.jsonObject(with: Data(snapshot.data.utf8)) as? [String: Any])
                    if figures["head"] as? Int == Int(delivered.last ?? 0) { break }
                }
                #expect(figures["subscribers"] as? Int == 2)
                #expect(figures["head"] as? Int == Int(delivered.last ?? 0))
                #expect(figures["events_delivered_total"] as? Int == 3)
                #expect(await visitor.next(within: 1.5) == nil, "public subscribers get no metrics")
                admin.close()
                visitor.close()
            }
        }
    }

    @Test func refusalsComeBeforeAnyStreamByte() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, configure: { $0.maximumSubscribers = 1 }) { fanout in
                let cases: [(String, [(String, String)], Int)] = [
                    (fanout.baseURL + "/events", [], 400),
                    (fanout.events((0..<33).map { "availability.course.c\($0)" }), [], 400),
                    (fanout.events(["availability.tomorrow"]), [], 400),
                    (fanout.events(["bookings"]), [], 400),
                    (fanout.events(["availability.session.not-a-uuid"]), [], 400),
                    (fanout.events(["availability"]), [("Last-Event-ID", "abc")], 400),
                    (fanout.events(["availability"], query: "&last_event_id=-4"), [], 400),
                ]
                for (url, headers, status) in cases {
                    let response = try await EventStreamClient.open(url, headers: headers)
                    #expect(response.status == status, "\(url) \(headers)")
                    #expect(response.headers.first(name: "content-type") == "application/problem+json")
                }
                let posted = try await TestHTTP.send(.POST, fanout.events(["availability"]))
                #expect(posted.status == 405)
                #expect(posted.headers.first(name: "Allow") == "GET")
                #expect(posted.contentType == "application/problem+json")
                let first = try await EventStreamClient.open(fanout.events(["availability"]))
                #expect(first.status == 200)
                let second = try await EventStreamClient.open(fanout.events(["availability"]))
                #expect(second.status == 503)
                #expect(second.headers.first(name: "retry-after") != nil)
                first.close()
            }
        }
    }

    /// HTTP/1.1 responses go out in request order: a stream request pipelined behind another
    /// request is not taken ahead of that request's response, it is asked to retry (and a
    /// parse error is still a 400).
    @Test func aPipelinedStreamRequestDoesNotOvertakeTheResponseBeforeIt() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db) { fanout in
                let pipelined = try await Self.exchange(
                    "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /events?topic=availability HTTP/1.1\r\nHost: x\r\n\r\n",
                    with: fanout.baseURL, until: { $0.contains("HTTP/1.1 503") })
                let ready = try #require(pipelined.range(of: "\"status\":\"ready\""), "\(pipelined)")
                let retry = try #require(pipelined.range(of: "HTTP/1.1 503"), "\(pipelined)")
                #expect(ready.upperBound <= retry.lowerBound, "the first response is complete before the second starts")
                #expect(!pipelined.contains("text/event-stream"))
                #expect(pipelined.lowercased().contains("content-type: application/problem+json"))

                let alone = try await Self.exchange(
                    "GET /events?topic=availability HTTP/1.1\r\nHost: x\r\n\r\n", with: fanout.baseURL,
                    until: { $0.contains(": vacancy stream") })
                #expect(alone.hasPrefix("HTTP/1.1 200"), "on its own the same request streams")
                #expect(alone.contains(": vacancy stream"))

                let garbage = try await Self.exchange("NOT HTTP\r\n\r\n", with: fanout.baseURL, until: { $0.contains("\r\n\r\n") })
                #expect(garbage.hasPrefix("HTTP/1.1 400"))
            }
        }
    }

    /// A client that closes its connection is let go at once, not at the next ping (15 s).
    @Test func aClientThatHangsUpIsLetGoAtOnce() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, tls: true) { fanout in
                let plain = try await EventStreamClient.open(fanout.events(["availability"]))
                let secure = try await EventStreamClient.open(try #require(fanout.secureEvents(["availability"])))
                #expect(try await Self.metric(#"vacancy_fanout_subscribers{transport="http1"}"#, at: fanout.baseURL) == 1)
                #expect(try await Self.metric(#"vacancy_fanout_subscribers{transport="h2"}"#, at: fanout.baseURL) == 1)
                plain.close()
                secure.close()
                for transport in ["http1", "h2"] {
                    let gauge = #"vacancy_fanout_subscribers{transport=""# + transport + #""}"#
                    // Well inside the 15 s ping that would otherwise find it gone; the margin is for a loaded machine.
                    await expectEventually(within: 8, "the \(transport) subscriber is gone") {
                        (try? await Self.metric(gauge, at: fanout.baseURL)) == 0
                    }
                }
            }
        }
    }

    /// Freed memory goes back to the system once a surge of streams settles, and not while
    /// streams are still opening or when there was no surge.
    @Test func freedMemoryIsReleasedOnceASurgeOfStreamsSettles() async throws {
        try await TestDatabase.with { db in
            try await withFanout(
                on: db,
                configure: {
                    $0.memoryTrimInterval = .seconds(1)
                    $0.memoryTrimChurn = 40
                }
            ) { fanout in
                // Each app counts into its own registry: this fan-out's trims start at 0.
                @Sendable func trims() async -> Double {
                    (try? await Self.metric("vacancy_fanout_memory_trims_total", at: fanout.baseURL)) ?? -1
                }
                // 19 streams opened and closed: a churn of 38, short of 40.
                for _ in 0..<19 { try await EventStreamClient.open(fanout.events(["availability"])).close() }
                try await Task.sleep(for: .milliseconds(2500))
                #expect(await trims() == 0, "no trim below the churn threshold")
                var streams: [EventStreamClient] = []
                for _ in 0..<20 { streams.append(try await EventStreamClient.open(fanout.events(["availability"]))) }
                for stream in streams { stream.close() }
                await expectEventually(within: 5, "one trim once the surge has settled") { await trims() == 1 }
                try await Task.sleep(for: .milliseconds(2500))
                #expect(await trims() == 1, "no more trims without more churn")
            }
        }
    }

    @Test func aSubscriberThatNeverReadsIsCutOffWhileOthersKeepUp() async throws {
        try await TestDatabase.with { db in
            try await withFanout(
                on: db,
                configure: {
                    $0.stream.bufferFrames = 2000
                    $0.stream.bufferBytes = 2 << 20
                }
            ) { fanout in
                let healthy = try await EventStreamClient.open(fanout.events(["availability"]))
                let stuck = try RawSocket.stuck(at: fanout.baseURL, path: "/events?topic=availability")
                // Both registered before the load starts (a fixed 200 ms was too short on a cold, busy machine).
                await expectEventually(within: 5, "both streams are registered") {
                    (try? await Self.metric(#"vacancy_fanout_subscribers{transport="http1"}"#, at: fanout.baseURL)) == 2
                }
                // 4 MB in bursts of 100 KB, 1 MB/s: a reading client keeps up (2 MiB of backlog
                // is two seconds of slack on a busy machine); a stuck one fills the little the
                // kernel may hold unsent (VACANCY_SEND_UNSENT_BYTES), then its backlog, whose
                // events cannot be conflated, and is cut off.
                var ids: [Int64] = []
                for _ in 0..<40 {
                    ids += try await db.appendEvents(50, padding: 2000)
                    try await Task.sleep(for: .milliseconds(100))
                }
                let received = await healthy.collect(ids.count, within: 20)
                #expect(received.compactMap(\.id).compactMap(Int64.init) == ids, "the reading subscriber gets all \(ids.count) events")
                let cutOff = try await eventually(within: 3) {
                    try await Self.metric("vacancy_fanout_slow_consumer_disconnects_total", at: fanout.baseURL) == 1
                }
                #expect(cutOff, "exactly one stream was cut off")
                let onlyHealthyLeft = try await eventually(within: 3) {
                    try await Self.metric(#"vacancy_fanout_subscribers{transport="http1"}"#, at: fanout.baseURL) == 1
                }
                #expect(onlyHealthyLeft, "the stuck subscriber is gone, the reading one stays")
                // Cut off with a reset, not a FIN queued behind the unread bytes: the client, which
                // reads nothing, still learns of it at once (and the server's kernel drops those
                // bytes). A FIN would wait behind the data it never reads, leaving it connected.
                let noticed = await eventually(within: 3) { stuck.peerClosed }
                #expect(noticed, "the stuck client saw its connection reset")
                healthy.close()
                stuck.close()
            }
        }
    }

    /// A client that stops acknowledging (gone without a word, or its window shut) is let go
    /// once sent data has waited unacknowledged for the send timeout, long before its buffer
    /// would fill; a client that reads keeps its stream, idle or not.
    @Test func aClientThatStopsAcknowledgingIsLetGoAfterTheSendTimeout() async throws {
        try await TestDatabase.with { db in
            try await withFanout(
                on: db,
                configure: {
                    $0.sendTimeout = .seconds(2)
                    $0.pingInterval = .seconds(1)
                    $0.stream.bufferFrames = 100_000
                    $0.stream.bufferBytes = 64 << 20
                }
            ) { fanout in
                let gauge = #"vacancy_fanout_subscribers{transport="http1"}"#
                let healthy = try await EventStreamClient.open(fanout.events(["availability"]))
                let stuck = try RawSocket.stuck(at: fanout.baseURL, path: "/events?topic=availability")
                await expectEventually(within: 3) { (try? await Self.metric(gauge, at: fanout.baseURL)) == 2 }
                // 400 KB: enough to shut the stuck client's 4 KB window, far short of its 64 MB buffer.
                let ids = try await db.appendEvents(200, padding: 2000)
                let received = await healthy.collect(ids.count, within: 10)
                #expect(received.compactMap(\.id).compactMap(Int64.init) == ids, "the reading subscriber gets every event")
                await expectEventually(within: 15, "the stream nobody acknowledges is dropped") {
                    (try? await Self.metric(gauge, at: fanout.baseURL)) == 1
                }
                #expect(
                    try await Self.metric("vacancy_fanout_slow_consumer_disconnects_total", at: fanout.baseURL) == 0,
                    "by the send timeout, not the buffer bound")
                // Pings every second, each one acknowledged: the reading client stays.
                try await Task.sleep(for: .seconds(4))
                #expect(try await Self.metric(gauge, at: fanout.baseURL) == 1, "the reading subscriber keeps its stream")
                let more = try await db.appendEvents(3)
                #expect(await healthy.collect(3, within: 5).compactMap(\.id).compactMap(Int64.init) == more)
                healthy.close()
                stuck.close()
            }
        }
    }
}

extension FanoutStreamTests {
    /// Sends `request` as raw bytes on a new connection and returns what arrived once `until`
    /// holds for it (and a moment more, for what follows), the server closed, or 10 s passed.
    static func exchange(_ request: String, with baseURL: String, until: @escaping @Sendable (String) -> Bool) async throws -> String {
        let url = try #require(URL(string: baseURL))
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: try #require(url.host), port: try #require(url.port)) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            let received = Mutex("")
            let reader = Task {
                for try await buffer in inbound { received.withLock { $0 += String(buffer: buffer) } }
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline, !until(received.withLock { $0 }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(300))
            reader.cancel()
            return received.withLock { $0 }
        }
    }

    /// A sample's value from `/metrics` (0 when absent).
    static func metric(_ name: String, at baseURL: String) async throws -> Double {
        PrometheusText(try await TestHTTP.send(.GET, baseURL + "/metrics").text).value(name) ?? 0
    }
}
