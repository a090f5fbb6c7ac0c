import Hummingbird
import Metrics
import Shared
import Synchronization

/// A token bucket per client address: `perSecond` tokens a second, at most `burst` saved up.
final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let limit: RouterConfiguration.RateLimit
    /// Past this many tracked clients, buckets that have refilled completely are forgotten
    /// (a forgotten client starts with a full bucket, which is what it would have had).
    private let trackedClients: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    init(limit: RouterConfiguration.RateLimit, trackedClients: Int = 10_000) {
        self.limit = limit
        self.trackedClients = trackedClients
    }

    /// Takes a token for `client`; when there is none, how long until there is one.
    func take(for client: String, now: ContinuousClock.Instant = .now) -> Duration? {
        let rate = Double(limit.perSecond)
        let burst = Double(limit.burst)
        return buckets.withLock { buckets in
            if buckets.count >= trackedClients { Self.forgetFull(&buckets, now: now, rate: rate, burst: burst) }
            var bucket = buckets[client] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            defer { buckets[client] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return .seconds((1 - bucket.tokens) / rate)
        }
    }

    private static func forgetFull(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant, rate: Double, burst: Double) {
        buckets = buckets.filter { _, bucket in
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return bucket.tokens + seconds * rate < burst
        }
    }
}

/// Applies the router's two rate limits per client address: one for opening event
/// streams, one for API calls. The page and health routes are not limited.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = VacancyRequestContext

    let routes: RouteTable
    let api: RateLimiter
    let streams: RateLimiter
    let metrics: AppMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method != .options, let route = routes.route(for: request.uri.path) else { return try await next(request, context) }
        let isStream = route.upstream == "fanout" && route.prefix == "/events"
        let limiter = isStream ? streams : api
        let client = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if let wait = limiter.take(for: client) {
            let kind = isStream ? "stream" : "api"
            metrics.counter("vacancy_router_rate_limited_total", [("kind", kind)]).increment()
            let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
            throw Problem(
                "rate-limited",
                title: "Too many requests",
                status: .tooManyRequests,
                detail: isStream
                    ? "Too many event streams opened from this address (\(limiter.limit.perSecond)/s, bursts of \(limiter.limit.burst)); retry in \(seconds) s."
                    : "Too many API calls from this address (\(limiter.limit.perSecond)/s, bursts of \(limiter.limit.burst)); retry in \(seconds) s.",
                extensions: ["limit_per_second": .int(limiter.limit.perSecond), "burst": .int(limiter.limit.burst)],
                headers: [.retryAfter: "\(seconds)"]
            )
        }
        return try await next(request, context)
    }
}
