import Foundation
import Shared
import TestSupport
import Testing

@testable import Fanout

/// A reader that is behind gets the newest state of every session instead of being cut.
@Suite(.timeLimit(.minutes(3))) struct ConflationTests {
    /// Bytes per second the throttled reader takes.
    static let readerRate = 16 << 10

    /// 5,000 `availability.updated` events on 200 sessions arrive at once, 1.6 MB in all
    /// (past the default bounds of 1,000 events and 1 MiB), for a reader taking 16 KiB/s
    /// through a 16 KiB receive buffer. With the default settings it is not cut: its backlog
    /// is conflated to the newest event per session, so it ends with the exact final state of
    /// all 200 sessions, ids strictly increasing, and the fan-out counts what it coalesced.
    @Test func aThrottledReaderThroughABurstEndsWithTheFinalStateOfEverySessionWithoutBeingCut() async throws {
        try await TestDatabase.with { db in
            try await withFanout(on: db) { fanout in
                let port = try #require(URL(string: fanout.baseURL)?.port)
                let reader = try RawSocket(port: port, receiveBuffer: 16 << 10)
                defer { reader.close() }
                try reader.sendGET("/events?topic=availability")
                await expectEventually(within: 5, "the stream is registered") {
                    (try? await FanoutStreamTests.metric(#"vacancy_fanout_subscribers{transport="http1"}"#, at: fanout.baseURL)) == 1
                }
                let rows = try await db.database.query(
                    """
                    WITH head AS (SELECT coalesce(max(id), 0) AS last FROM events)
                    INSERT INTO events (id, topics, type, payload)
                    SELECT head.last + g, ARRAY['availability', 'availability.session.s' || (g % 200)], 'availability.updated',
                           jsonb_build_object('session', 's' || (g % 200), 'n', head.last + g, 'pad', repeat('x', 250))
                    FROM head, generate_series(1, 5000) g
                    RETURNING id, payload->>'session'
                    """)
                _ = try await db.database.query("NOTIFY vacancy_events")
                var newest: [String: Int64] = [:]
                for row in rows {
                    let (id, session) = try row.decode((Int64, String).self)
                    newest[session] = max(newest[session] ?? 0, id)
                }
                #expect(newest.count == 200)

                var parser = EventParser()
                let started = ContinuousClock.now
                var seen: [String: Int64] = [:]
                while seen != newest, ContinuousClock.now - started < .seconds(150) {
                    let bytes = reader.read(upTo: Self.readerRate / 4)
                    guard !bytes.isEmpty else { break }
                    for event in parser.feed(bytes) { seen[event.session] = event.id }
                    try await Task.sleep(for: .milliseconds(250))
                }
                let elapsed = ContinuousClock.now - started
                #expect(seen == newest, "every session's final state arrived (\(seen.count) sessions seen, in \(elapsed))")
                #expect(parser.ids == parser.ids.sorted() && Set(parser.ids).count == parser.ids.count, "ids strictly increasing")
                #expect(parser.ids.count < 5000, "what the reader got was conflated (\(parser.ids.count) events of 5,000)")
                #expect(!reader.peerClosed, "the reader was not cut")
                #expect(try await FanoutStreamTests.metric("vacancy_fanout_slow_consumer_disconnects_total", at: fanout.baseURL) == 0)
                let coalesced = try await FanoutStreamTests.metric(
                    #"vacancy_fanout_coalesced_events_total{reason="slow_reader"}"#, at: fanout.baseURL)
                #expect(Int(coalesced) + parser.ids.count >= 5000, "every event delivered or counted as coalesced")
            }
        }
    }
}

/// The `id:` and the session of each complete event in an HTTP/1.1 response with a chunked
/// body, fed as it arrives.
private struct EventParser {
    /// Raw bytes not yet taken apart (the head, then chunk framing).
    private var raw: [UInt8] = []
    private var headDone = false
    /// The body, de-chunked, not yet parsed into events.
    private var body: [UInt8] = []
    private(set) var ids: [Int64] = []

    mutating func feed(_ bytes: [UInt8]) -> [(id: Int64, session: String)] {
        raw += bytes
        if !headDone, let end = Self.find([13, 10, 13, 10], in: raw, from: 0) {
            raw.removeFirst(end + 4)
            headDone = true
        }
        guard headDone else { return [] }
        // Each chunk: its size in hex, CRLF, the data, CRLF.
        while let lineEnd = Self.find([13, 10], in: raw, from: 0),
            let size = Int(String(decoding: raw[..<lineEnd], as: UTF8.self), radix: 16),
            raw.count >= lineEnd + 2 + size + 2
        {
            body += raw[(lineEnd + 2)..<(lineEnd + 2 + size)]
            raw.removeFirst(lineEnd + 2 + size + 2)
        }
        var events: [(id: Int64, session: String)] = []
        while let end = Self.find([10, 10], in: body, from: 0) {
            let text = String(decoding: body[..<end], as: UTF8.self)
            body.removeFirst(end + 2)
            var id: Int64?
            var session: String?
            for line in text.split(separator: "\n") {
                if line.hasPrefix("id:") { id = Int64(line.dropFirst(3).trimmingCharacters(in: .whitespaces)) }
                if line.hasPrefix("data:"), let data = line.dropFirst(5).data(using: .utf8),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
                {
                    session = object["session"] as? String
                }
            }
            guard let id, let session else { continue }
            ids.append(id)
            events.append((id, session))
        }
        return events
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count + start else { return nil }
        for index in start...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
