import AsyncHTTPClient
import Foundation

/// Subscribers to `availability` through a stack's router, every other one on HTTP/2 over
/// TLS, all from one id; and, at the end, each one's delivery checked against the log.
struct SubscriberCrowd {
    let watchers: [EventWatcher]
    let startHead: Int64

    /// What the crowd was delivered, against the log's availability events after `startHead`.
    struct Verdict {
        let expected: [Int64]
        let deliveries: [EventWatcher.Delivery]
        var total: EventWatcher.Delivery { deliveries.reduce(EventWatcher.Delivery(), +) }
        var inexact: Int { deliveries.filter { !$0.exact }.count }
    }

    /// Connects `count` subscribers and waits until every one has a stream.
    static func connect(
        _ count: Int, to stack: Stack, client: HTTPClient, tlsClient: HTTPClient, from startHead: Int64
    ) async throws -> SubscriberCrowd {
        let watchers = (0..<count).map { _ in EventWatcher() }
        for (index, watcher) in watchers.enumerated() {
            let (base, http) = index % 2 == 0 ? (stack.routerURL, client) : (stack.routerTLSURL, tlsClient)
            watcher.start(url: base + "/events?topic=availability", client: http, from: startHead)
        }
        let crowd = SubscriberCrowd(watchers: watchers, startHead: startHead)
        do {
            try await waitUntil(within: .seconds(30), "every subscriber connected") { watchers.allSatisfy { $0.connects > 0 } }
        } catch {
            crowd.stop()
            throw error
        }
        return crowd
    }

    func stop() {
        for watcher in watchers { watcher.stop() }
    }

    /// Lets every subscriber catch up with the log on `databaseURL` (30 s at most), stops
    /// them, and checks each one's events against it.
    func verify(databaseURL: String) async throws -> Verdict {
        let log = try await StackDatabase.availabilityLog(databaseURL, after: startHead)
        let finalID = log.ids.last ?? startHead
        try? await waitUntil(within: .seconds(30), "subscribers caught up") { watchers.allSatisfy { ($0.lastID ?? 0) >= finalID } }
        stop()
        return Verdict(
            expected: log.ids,
            deliveries: watchers.map { $0.verify(expected: log.ids, payloads: log.payloads, sessionKeys: log.sessionKeys) })
    }
}
