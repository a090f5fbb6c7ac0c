import AsyncHTTPClient
import Foundation
import NIOCore
import Shared
import Synchronization
import TestSupport

/// One SSE subscriber for the scenarios: keeps the id and type of every event it receives,
/// with the time it arrived, and reconnects with `Last-Event-ID` when its stream ends or
/// fails, as a browser's EventSource does.
final class EventWatcher: Sendable {
    struct Received: Sendable {
        let id: Int64
        let type: String
        let at: ContinuousClock.Instant
        /// Wall-clock arrival, to compare with the event's `created_at` in the log.
        let wall: Date
        /// The `data:` line, hashed (compared with the log's payload of the same id).
        let dataHash: Int
    }

    private struct State {
        var received: [Received] = []
        var connects = 0
        var refused = 0
    }

    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    var events: [Received] { state.withLock { $0.received } }
    var lastID: Int64? { state.withLock { $0.received.last?.id } }
    /// Streams opened with a 200, the first one included.
    var connects: Int { state.withLock { $0.connects } }

    /// Starts following `url` (…/events?topic=…) from `lastEventID`.
    func start(url: String, client: HTTPClient, from lastEventID: Int64?) {
        let follower = Task {
            var resumeFrom = lastEventID
            var failures = 0
            while !Task.isCancelled {
                let request = EventStreamClient.request(url, lastEventID: resumeFrom)
                do {
                    let response = try await client.execute(request, timeout: .seconds(5))
                    if response.status == .ok {
                        failures = 0
                        state.withLock { $0.connects += 1 }
                        try await EventStreamClient.read(response.body) { parsed, _ in
                            let now = ContinuousClock.now
                            let wall = Date()
                            let events = parsed.compactMap { event in
                                event.id.flatMap(Int64.init).map {
                                    Received(id: $0, type: event.event, at: now, wall: wall, dataHash: event.data.hashValue)
                                }
                            }
                            guard !events.isEmpty else { return }
                            state.withLock { $0.received.append(contentsOf: events) }
                            resumeFrom = events.last?.id
                        }
                    } else {
                        failures += 1
                        state.withLock { $0.refused += 1 }
                        _ = try? await response.body.collect(upTo: 1 << 16)
                    }
                } catch {
                    failures += 1
                }
                // As the page does: about a second after a stream ends (the server's `retry:` is
                // 2 s), backing off to 8 s while refused or unreachable, with jitter so a crowd
                // of clients does not come back in step.
                let base = failures == 0 ? 500 : min(8000, 500 << min(failures, 4))
                try? await Task.sleep(for: .milliseconds(base + Int.random(in: 0...base)))
            }
        }
        task.withLock { $0 = follower }
    }

    func stop() {
        task.withLock { $0?.cancel() }
    }

    /// Waits for an event with an id above `id`; returns when it arrived, or nil after `limit`.
    func firstEvent(after id: Int64, within limit: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let event = state.withLock({ $0.received.first { $0.id > id } }) { return event.at }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Compares what arrived with `expected`, the ids the log holds for this subscriber's
    /// topics after its starting point. Every expected id exactly once and in order; a
    /// `reset` is allowed, after which the stream must carry on in order from the head it names.
    /// With `payloads` (the log's `payload::text` by id, hashed), every event must also carry
    /// the log's data for its id. What came before the last reset was superseded by it (the
    /// client refetches): events there the log does not have, or has with other data, are
    /// what a failover lost and the reset took back; after the last reset there may be none.
    /// With `sessionKeys` (an `availability.updated`'s session topic by id), an event that did
    /// not arrive is coalesced, not missing, when a newer event of the same session did: the
    /// fan-out conflated a backlog of this reader's (DESIGN.md: a session's older state is
    /// superseded, never reordered, and its newest is never lost).
    func verify(expected: [Int64], payloads: [Int64: Int]? = nil, sessionKeys: [Int64: String] = [:]) -> Delivery {
        // Events committed after `expected` was read (holds expiring, the clock tick) are
        // outside the window being checked.
        let ceiling = expected.last ?? .max
        let all = events
        let lastReset = all.lastIndex { $0.type == "reset" }
        let expectedSet = Set(expected)
        var delivery = Delivery()
        var seen = Set<Int64>()
        var previous: Int64 = .min
        for (index, event) in all.enumerated() {
            let superseded = lastReset.map { index < $0 } ?? false
            if event.type == "reset" {
                delivery.resets += 1
                continue
            }
            let known = expectedSet.contains(event.id) && payloads.map { $0[event.id] == event.dataHash } ?? true
            if !known {
                if superseded {
                    delivery.takenBack += 1
                } else if event.id <= ceiling {
                    if expectedSet.contains(event.id) { delivery.different += 1 } else { delivery.unexpected += 1 }
                }
                continue
            }
            guard event.id <= ceiling else { continue }
            if !seen.insert(event.id).inserted { delivery.duplicated += 1 }
            if event.id <= previous { delivery.outOfOrder += 1 }
            previous = event.id
        }
        delivery.delivered = seen.count
        // Before any reset every expected id must be there; after one, those past its head.
        let afterReset = lastReset.map { all[$0].id }
        let mustHave = afterReset.map { head in expected.filter { $0 > head } } ?? expected
        var newestSeen: [String: Int64] = [:]
        for id in seen { if let key = sessionKeys[id] { newestSeen[key] = max(newestSeen[key] ?? .min, id) } }
        let notSeen = mustHave.filter { !seen.contains($0) }
        let missing = notSeen.filter { id in sessionKeys[id].flatMap { newestSeen[$0] }.map { $0 <= id } ?? true }
        delivery.coalesced = notSeen.count - missing.count
        delivery.missing = missing.count
        delivery.firstMissing = missing.first
        return delivery
    }

    struct Delivery: Sendable {
        var delivered = 0
        var missing = 0
        var duplicated = 0
        var outOfOrder = 0
        /// Ids the log does not hold, not taken back by a later reset.
        var unexpected = 0
        /// Ids the log holds with other data, not taken back by a later reset: silently wrong.
        var different = 0
        /// Events from a lost history that a later reset took back.
        var takenBack = 0
        var resets = 0
        /// `availability.updated` events superseded by a newer one of their session that arrived.
        var coalesced = 0
        var firstMissing: Int64?

        var exact: Bool { missing == 0 && duplicated == 0 && outOfOrder == 0 && unexpected == 0 && different == 0 }

        static func + (left: Delivery, right: Delivery) -> Delivery {
            Delivery(
                delivered: left.delivered + right.delivered, missing: left.missing + right.missing,
                duplicated: left.duplicated + right.duplicated, outOfOrder: left.outOfOrder + right.outOfOrder,
                unexpected: left.unexpected + right.unexpected, different: left.different + right.different,
                takenBack: left.takenBack + right.takenBack, resets: left.resets + right.resets,
                coalesced: left.coalesced + right.coalesced)
        }
    }
}
