import Foundation
import Shared

/// Everything the fan-out reads from the environment.
struct FanoutConfiguration: ServiceConfiguration {
    var common: CommonConfiguration
    var tokenSecret: String
    /// Where the ES256 and EdDSA keys of subscriber tokens are published (nil: HS256 only).
    var tokenJWKSURL: String?
    var tokenJWKSRefresh: Duration
    /// How often the log is read even without a NOTIFY.
    var pollInterval: Duration
    var pingInterval: Duration
    /// How often `admin` followers get a `metrics` event.
    var metricsInterval: Duration
    /// How often this instance reports its presence counts (and tells subscribers of changes).
    var presenceInterval: Duration
    /// Recent events kept in memory for resumes.
    var windowSize: Int
    var maximumSubscribers: Int
    /// How often freed memory may be given back after a surge of streams (zero: never).
    var memoryTrimInterval: Duration
    /// Streams opened or closed since the last time that make it worth it.
    var memoryTrimChurn: Int
    var stream: FanoutStream.StreamSettings
    /// How long sent data may go unacknowledged before a connection is dropped (nil: the kernel's own).
    var sendTimeout: Duration?
    /// `TCP_NOTSENT_LOWAT` on event connections (nil: the kernel's own): what a slow reader is
    /// behind by then waits in its stream's backlog, where it is conflated, not in the kernel.
    var unsentBytes: Int?
    /// TLS (HTTP/2 and HTTP/1.1 by ALPN) on its own port, when a certificate is configured.
    var tls: TLSSettings?

    init(reader: inout ConfigReader) throws {
        common = try CommonConfiguration(serviceName: "fanout", portVariable: "VACANCY_FANOUT_PORT", defaultPort: 8083, reader: &reader)
        tokenSecret = reader.string("VACANCY_TOKEN_SECRET", default: TokenSigner.developmentSecret, secret: true)
        let jwksURL = reader.string("VACANCY_TOKEN_JWKS_URL", default: "")
        if !jwksURL.isEmpty {
            guard let url = URL(string: jwksURL), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ConfigReader.InvalidValue(name: "VACANCY_TOKEN_JWKS_URL", value: jwksURL, expected: "an http:// or https:// URL")
            }
        }
        tokenJWKSURL = jwksURL.isEmpty ? nil : jwksURL
        tokenJWKSRefresh = .seconds(try reader.int("VACANCY_TOKEN_JWKS_REFRESH_SECONDS", default: 300, in: 1...86_400))
        pollInterval = try reader.milliseconds("VACANCY_POLL_MS", default: 1000, in: 50...60000)
        pingInterval = .seconds(try reader.int("VACANCY_PING_SECONDS", default: 15, in: 1...300))
        metricsInterval = .seconds(try reader.int("VACANCY_METRICS_SECONDS", default: 5, in: 1...3600))
        presenceInterval = .seconds(try reader.int("VACANCY_PRESENCE_SECONDS", default: 2, in: 1...300))
        windowSize = try reader.int("VACANCY_FANOUT_WINDOW", default: 10_000, in: 0...1_000_000)
        maximumSubscribers = try reader.int("VACANCY_MAX_SUBSCRIBERS", default: 20_000, in: 1...1_000_000)
        memoryTrimInterval = .seconds(try reader.int("VACANCY_MEMORY_TRIM_SECONDS", default: 10, in: 0...3600))
        memoryTrimChurn = try reader.int("VACANCY_MEMORY_TRIM_CHURN", default: 1000, in: 1...10_000_000)
        stream = FanoutStream.StreamSettings(
            retryMilliseconds: try reader.int("VACANCY_SSE_RETRY_MS", default: 2000, in: 100...600_000),
            bufferFrames: try reader.int("VACANCY_SUBSCRIBER_BUFFER_EVENTS", default: 1000, in: 1...1_000_000),
            bufferBytes: try reader.int("VACANCY_SUBSCRIBER_BUFFER_BYTES", default: 1 << 20, in: 1024...1 << 30),
            stallSeconds: try reader.int("VACANCY_SUBSCRIBER_STALL_SECONDS", default: 20, in: 1...3600)
        )
        sendTimeout = try SendTimeout.read(&reader)
        unsentBytes = try SendTimeout.readUnsentLimit(&reader)
        tls = try TLSSettings.read(&reader, portVariable: "VACANCY_FANOUT_TLS_PORT", defaultPort: 8483)
    }
}
