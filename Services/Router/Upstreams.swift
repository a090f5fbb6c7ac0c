import AsyncHTTPClient
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Shared
import Synchronization

/// The instances of each service behind the router and whether each answers. API calls go
/// round robin over a service's healthy instances; event streams to the healthy instance with
/// the fewest streams open through this router. A failed connect marks an instance down at
/// once (so calls go elsewhere, or get a quick 503 when none is left, instead of waiting to
/// connect), and the health check brings it back within one interval of it answering again.
final class Upstreams: Sendable {
    struct Instance: Sendable, Hashable {
        /// The service: `bookings`, `availability` or `fanout`.
        let service: String
        let baseURL: String
    }

    private struct State {
        var healthy: [Instance: Bool] = [:]
        /// Each service's round-robin cursor.
        var next: [String: Int] = [:]
        /// Event streams open through this router, by instance.
        var streams: [Instance: Int] = [:]
    }

    private let services: [String: [Instance]]
    private let state: Mutex<State>
    private let metrics: AppMetrics

    /// `urls`: service → its instances' base URLs, in order.
    init(_ urls: [String: [String]], metrics: AppMetrics) {
        self.metrics = metrics
        services = urls.reduce(into: [:]) { services, entry in
            services[entry.key] = entry.value.map { Instance(service: entry.key, baseURL: $0) }
        }
        var state = State()
        // Optimistic at start: the first failed connect says otherwise soon enough.
        for instance in services.values.joined() {
            state.healthy[instance] = true
            metrics.gauge("vacancy_router_upstream_up", Self.dimensions(instance)).record(1)
        }
        self.state = Mutex(state)
    }

    static func dimensions(_ instance: Instance) -> [(String, String)] {
        [("instance", instance.baseURL), ("upstream", instance.service)]
    }

    /// Every instance, by service and then in the order configured.
    var all: [Instance] { services.keys.sorted().flatMap { services[$0] ?? [] } }

    var serviceNames: [String] { services.keys.sorted() }

    func knows(_ service: String) -> Bool { services[service] != nil }

    /// Whether any instance of `service` answers.
    func isHealthy(_ service: String) -> Bool {
        let instances = services[service] ?? []
        return state.withLock { state in instances.contains { state.healthy[$0] == true } }
    }

    func isHealthy(_ instance: Instance) -> Bool {
        state.withLock { $0.healthy[instance] == true }
    }

    /// The next healthy instance of `service` in turn, other than those in `excluding`.
    func next(_ service: String, excluding: Set<Instance> = []) -> Instance? {
        let instances = services[service] ?? []
        guard !instances.isEmpty else { return nil }
        return state.withLock { state in
            let start = state.next[service, default: 0]
            for offset in 0..<instances.count {
                let instance = instances[(start + offset) % instances.count]
                guard state.healthy[instance] == true, !excluding.contains(instance) else { continue }
                state.next[service] = (start + offset + 1) % instances.count
                return instance
            }
            return nil
        }
    }

    /// The healthy instance of `service` with the fewest streams open through this router
    /// (the first configured among equals), other than those in `excluding`.
    /// The healthy instance with the fewest open streams, its count already raised by the
    /// stream about to open there: a crowd connecting at once is spread, not sent to whichever
    /// looked emptiest before any of it arrived. `streamClosed` gives the count back.
    func claimStream(_ service: String, excluding: Set<Instance> = []) -> Instance? {
        let instances = services[service] ?? []
        let claimed = state.withLock { state -> (Instance, Int)? in
            guard
                let instance = instances.filter({ state.healthy[$0] == true && !excluding.contains($0) })
                    .min(by: { state.streams[$0, default: 0] < state.streams[$1, default: 0] })
            else { return nil }
            state.streams[instance, default: 0] += 1
            return (instance, state.streams[instance]!)
        }
        guard let (instance, open) = claimed else { return nil }
        metrics.gauge("vacancy_router_open_streams", Self.dimensions(instance)).record(open)
        return instance
    }

    func streamClosed(_ instance: Instance) {
        let open = state.withLock { state -> Int in
            state.streams[instance] = max(0, state.streams[instance, default: 0] - 1)
            return state.streams[instance]!
        }
        metrics.gauge("vacancy_router_open_streams", Self.dimensions(instance)).record(open)
    }

    /// Streams open through this router to `instance`.
    func openStreams(_ instance: Instance) -> Int {
        state.withLock { $0.streams[instance, default: 0] }
    }

    /// Records what a call or a health check saw; logs and counts only the changes.
    func mark(_ instance: Instance, healthy isUp: Bool, logger: Logger) {
        let changed = state.withLock { state in
            defer { state.healthy[instance] = isUp }
            return state.healthy[instance] != isUp
        }
        guard changed else { return }
        metrics.gauge("vacancy_router_upstream_up", Self.dimensions(instance)).record(isUp ? 1 : 0)
        let metadata: Logger.Metadata = ["upstream": .string(instance.service), "instance": .string(instance.baseURL)]
        if isUp {
            logger.info("upstream is back", metadata: metadata)
        } else {
            logger.warning("upstream is down", metadata: metadata)
        }
    }
}

/// Asks every instance's `/healthz` each interval and records the answer.
struct UpstreamHealthCheck: Service {
    let upstreams: Upstreams
    let client: HTTPClient
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await withTaskGroup(of: Void.self) { group in
                    for instance in upstreams.all {
                        group.addTask { await check(instance) }
                    }
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    private func check(_ instance: Upstreams.Instance) async {
        let request = HTTPClientRequest(url: instance.baseURL + "/healthz")
        do {
            let response = try await client.execute(request, timeout: .milliseconds(max(500, interval.milliseconds)))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            upstreams.mark(instance, healthy: response.status == .ok, logger: logger)
        } catch {
            upstreams.mark(instance, healthy: false, logger: logger)
        }
    }
}
