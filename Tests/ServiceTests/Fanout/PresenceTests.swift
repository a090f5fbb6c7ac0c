import Foundation
import Shared
import TestSupport
import Testing

@testable import Fanout

/// Presence across two fan-out instances on one database: counts add up, a silent
/// instance's viewers leave the count, private topics are never counted, bad input is a 400.
@Suite(.serialized) struct PresenceTests {
    static let session = "availability.session.6f0c2a4e-1d8b-4c1e-9a57-0b5e3c2d4f10"

    static func presence(_ topics: [String], at baseURL: String) async throws -> TestResponse {
        let query = topics.map {
            "topic=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: ".-_")))!
        }
        return try await TestHTTP.send(.GET, baseURL + "/api/v1/presence?" + query.joined(separator: "&"))
    }

    static func watching(_ topic: String, at baseURL: String) async -> Int? {
        guard let response = try? await presence([topic], at: baseURL), response.status == 200 else { return nil }
        return (response.json["topics"] as? [String: any Sendable])?[topic] as? Int
    }

    /// The `presence` events a stream received, as (topic, watching), in order.
    static func presenceEvents(_ events: [ServerSentEventParser.Event]) -> [(String, Int)] {
        events.filter { $0.event == "presence" }.compactMap { event in
            guard let object = try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any],
                let topic = object["topic"] as? String, let watching = object["watching"] as? Int
            else { return nil }
            return (topic, watching)
        }
    }

    @Test func countsAddUpAcrossInstancesAndEachTopicsFollowersAreToldOfChanges() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, configure: { $0.presenceInterval = .seconds(1) }) { first in
                try await withFanout(on: db, configure: { $0.presenceInterval = .seconds(1) }) { second in
                    let here = try await EventStreamClient.open(first.events([Self.session]))
                    let alsoHere = try await EventStreamClient.open(first.events([Self.session, "availability"]))
                    let there = try await EventStreamClient.open(second.events([Self.session]), includePresence: true)
                    for url in [first.baseURL, second.baseURL] {
                        await expectEventually(within: 5, "both instances count the three streams of the session") {
                            await Self.watching(Self.session, at: url) == 3
                        }
                    }
                    #expect(await Self.watching("availability", at: second.baseURL) == 1)
                    let answer = try await Self.presence([Self.session, "alerts"], at: first.baseURL)
                    #expect(answer.headers.first(name: "cache-control") == "no-store")
                    #expect((answer.json["topics"] as? [String: any Sendable])?["alerts"] as? Int == 0, "a topic nobody follows is 0")
                    let at = try #require(answer.json["at"] as? String)
                    let stamp = try #require(RFC3339.date(from: at))
                    #expect(abs(stamp.timeIntervalSinceNow) < 5, "the counts are fresh")

                    // Every follower of the session hears the count, on either instance, with no id.
                    let seen = await there.collect(20, within: 4)
                    let told = Self.presenceEvents(seen).filter { $0.0 == Self.session }
                    #expect(told.last?.1 == 3)
                    #expect(seen.filter { $0.event == "presence" }.allSatisfy { $0.id == nil }, "presence never moves Last-Event-ID")

                    here.close()
                    await expectEventually(within: 5, "a stream that closes leaves the count on the other instance") {
                        await Self.watching(Self.session, at: second.baseURL) == 2
                    }
                    await expectEventually(within: 5, "and its followers are told") {
                        Self.presenceEvents(await there.collect(5, within: 1)).contains { $0 == (Self.session, 2) }
                    }
                    alsoHere.close()
                    there.close()
                }
            }
        }
    }

    @Test func anInstanceSilentForThreeIntervalsNoLongerCounts() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, configure: { $0.presenceInterval = .seconds(1) }) { fanout in
                // An instance that reported 5 viewers and then died without a word (kill -9).
                _ = try await db.database.query(
                    """
                    INSERT INTO presence_reports (instance, counts, reported_at)
                    VALUES ('killed', jsonb_build_object(\(Self.session)::text, 5), now())
                    """)
                await expectEventually(within: 3, "its viewers count while it is fresh") {
                    await Self.watching(Self.session, at: fanout.baseURL) == 5
                }
                await expectEventually(within: 6, "and are gone within three intervals of silence") {
                    await Self.watching(Self.session, at: fanout.baseURL) == 0
                }
            }
        }
    }

    /// PostgreSQL down: reports fail, streams carry on, the counts' `at` stops moving; both
    /// recover when the database does.
    @Test(.timeLimit(.minutes(2))) func countsGoStaleWhileTheDatabaseIsDownAndStreamsCarryOn() async throws {
        let cluster = try await PrivateCluster.start(port: .presenceOutage, durable: false)
        try await withCleanup(
            {
                try await TestDatabase.withExisting(url: cluster.url) { db in
                    try await withFanout(on: db, configure: { $0.presenceInterval = .seconds(1) }) { fanout in
                        let stream = try await EventStreamClient.open(fanout.events([Self.session]))
                        await expectEventually(within: 4) { await Self.watching(Self.session, at: fanout.baseURL) == 1 }
                        try await cluster.stop()
                        try await Task.sleep(for: .seconds(3))
                        let stale = try await Self.presence([Self.session], at: fanout.baseURL)
                        #expect(stale.status == 200, "answered from memory while PostgreSQL is down")
                        let staleText = try #require(stale.json["at"] as? String)
                        let staleAt = try #require(RFC3339.date(from: staleText))
                        #expect(Date().timeIntervalSince(staleAt) >= 2, "at says since when the counts are old")
                        #expect(
                            try await FanoutStreamTests.metric(
                                #"vacancy_fanout_presence_reports_total{outcome="failed"}"#, at: fanout.baseURL) > 0)
                        #expect(!stream.hasEnded, "the stream never waited for a report")
                        try await cluster.start()
                        await expectEventually(within: 10, "fresh again once PostgreSQL is back") {
                            guard let answer = try? await Self.presence([Self.session], at: fanout.baseURL),
                                let at = (answer.json["at"] as? String).flatMap(RFC3339.date(from:))
                            else { return false }
                            return at > staleAt
                        }
                        stream.close()
                    }
                }
            }, cleanup: { await cluster.destroy() })
    }

    @Test func privateTopicsAreNeverCountedOrShown() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db, configure: { $0.presenceInterval = .seconds(1) }) { fanout in
                let token = try await TokenSigner(secret: TokenSigner.developmentSecret).sign(
                    SubscriberToken(sub: "c-1", topics: ["user.c-1"], expires: Date().addingTimeInterval(600)))
                let mine = try await EventStreamClient.open(fanout.events(["user.c-1", Self.session], query: "&token=\(token)"))
                await expectEventually(within: 4, "the public topic is counted") {
                    await Self.watching(Self.session, at: fanout.baseURL) == 1
                }
                await expectEventually(within: 4, "and reported") {
                    (try? await db.database.query("SELECT counts::text FROM presence_reports").map { try $0.decode(String.self) })?
                        .joined().contains(Self.session) == true
                }
                let stored = try await db.database.query("SELECT counts::text FROM presence_reports").map { try $0.decode(String.self) }
                #expect(stored.count == 1)
                #expect(!stored.joined().contains("user."), "the private topic never reaches the table")
                let refused = try await Self.presence(["user.c-1"], at: fanout.baseURL)
                #expect(refused.status == 400)
                mine.close()
            }
        }
    }

    @Test(arguments: [
        ("", "at least one topic"),
        ("topic=bogus", "'bogus' is not a topic"),
        ("topic=admin", "'admin' is private"),
        ("topic=availability&topic=user.someone", "'user.someone' is private"),
        ((0...32).map { "topic=availability.course.c\($0)" }.joined(separator: "&"), "at most 32 topics"),
    ])
    func badInputIsAProblemNamingTheTopic(query: String, detail: String) async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db) { fanout in
                let response = try await TestHTTP.send(.GET, fanout.baseURL + "/api/v1/presence?" + query)
                #expect(response.status == 400)
                #expect(response.headers.first(name: "content-type") == "application/problem+json")
                #expect((response.json["detail"] as? String)?.contains(detail) == true, "\(response.text)")
            }
        }
    }
}
