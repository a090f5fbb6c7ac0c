import Shared

/// Everything the bookings service reads from the environment.
struct BookingsConfiguration: ServiceConfiguration {
    static let defaultAPIKeys = "dev:vacancy-dev-key"

    var common: CommonConfiguration
    var apiKeys: APIKeys
    /// Whether committed changes wake the calculator with a (coalesced) NOTIFY.
    var notifyChanges: Bool
    var holdSeconds: HoldPolicy
    /// How long a seat offered from a waitlist is held when the entry names no `offer_seconds`.
    var offers: OfferPolicy
    /// How often expired holds are swept.
    var sweepInterval: Duration
    var idempotencyTTLHours: Int
    var maxBodyBytes: Int
    /// Signs subscriber tokens; the fan-out verifies them with the same secret.
    var tokenSecret: String
    /// The zone of a session created without `time_zone`.
    var timeZone: String

    init(reader: inout ConfigReader) throws {
        common = try CommonConfiguration(serviceName: "bookings", portVariable: "VACANCY_BOOKINGS_PORT", defaultPort: 8081, reader: &reader)
        common.eventLoopExecutor = try CommonConfiguration.readEventLoopExecutor(&reader)
        apiKeys = try APIKeys(parsing: reader.string("VACANCY_API_KEYS", default: Self.defaultAPIKeys, secret: true))
        notifyChanges = try reader.bool("VACANCY_NOTIFY_CHANGES", default: true)
        holdSeconds = HoldPolicy(
            defaultSeconds: try reader.int("VACANCY_HOLD_DEFAULT_SECONDS", default: 600, in: 60...7200),
            allowed: 60...7200
        )
        offers = OfferPolicy(defaultSeconds: try reader.int("VACANCY_OFFER_SECONDS", default: 900, in: OfferPolicy.allowed))
        sweepInterval = try reader.milliseconds("VACANCY_HOLD_SWEEP_MS", default: 1000, in: 100...60000)
        idempotencyTTLHours = try reader.int("VACANCY_IDEMPOTENCY_TTL_HOURS", default: 24, in: 1...720)
        maxBodyBytes = try reader.int("VACANCY_MAX_BODY_BYTES", default: 64 * 1024, in: 1024...1_048_576)
        tokenSecret = reader.string("VACANCY_TOKEN_SECRET", default: TokenSigner.developmentSecret, secret: true)
        timeZone = try reader.timeZone("VACANCY_TIME_ZONE", default: "UTC")
    }
}

/// How long holds last: the default when a request asks for a hold without a length, and the allowed range.
struct HoldPolicy: Sendable {
    var defaultSeconds: Int
    var allowed: ClosedRange<Int>
}
