import Foundation
import Logging
import Shared

/// Everything the router reads from the environment.
struct RouterConfiguration: Sendable, LoggingSettings {
    var serviceName = "router"
    var host: String
    var port: Int
    var logLevel: Logger.Level
    var logFormat: LogFormat
    var eventLoopExecutor: Bool
    /// Service → its instances' base URLs (`http://host:port`), in order.
    var upstreams: [String: [String]]
    var routes: RouteTable
    /// The web page's folder, served at `/`.
    var webRoot: String
    var maximumBodyBytes: Int
    var apiLimit: RateLimit
    var streamLimit: RateLimit
    /// Origins allowed to call across origins; empty means same-origin only.
    var corsOrigins: Set<String>
    /// Longest wait for an upstream's response head before answering 504.
    var upstreamTimeout: Duration
    var connectTimeout: Duration
    /// How often each upstream's `/healthz` is asked.
    var healthInterval: Duration
    /// Demo mode: calls to the bookings API without credentials get the dev key added.
    var demoKey: String?
    var tls: TLSSettings?
    /// How long sent data may go unacknowledged before a client's connection is dropped (nil: the kernel's own).
    var sendTimeout: Duration?

    /// A token bucket: `perSecond` refill, up to `burst` at once.
    struct RateLimit: Sendable, Equatable {
        var perSecond: Int
        var burst: Int
    }

    static let upstreamNames = ["bookings", "availability", "fanout"]

    init(reader: inout ConfigReader) throws {
        host = reader.string("VACANCY_HOST", default: CommonConfiguration.defaultHost)
        port = try reader.int("VACANCY_ROUTER_PORT", default: 8080, in: 0...65535)
        (logLevel, logFormat) = try CommonConfiguration.readLogging(&reader)
        eventLoopExecutor = try CommonConfiguration.readEventLoopExecutor(&reader)
        let defaults = ["bookings": "http://127.0.0.1:8081", "availability": "http://127.0.0.1:8082", "fanout": "http://127.0.0.1:8083"]
        var upstreams: [String: [String]] = [:]
        for name in Self.upstreamNames {
            let variable = "VACANCY_\(name.uppercased())_URL"
            upstreams[name] = try Self.baseURLs(reader.string(variable, default: defaults[name]!), variable: variable)
        }
        self.upstreams = upstreams
        routes = try RouteTable(
            parsing: reader.string("VACANCY_ROUTES", default: RouteTable.defaultSpecification), upstreams: Set(Self.upstreamNames))
        webRoot = reader.string("VACANCY_WEB_ROOT", default: "Services/Router/Web")
        maximumBodyBytes = try reader.int("VACANCY_MAX_BODY_BYTES", default: 64 * 1024, in: 1...(64 << 20))
        apiLimit = RateLimit(
            perSecond: try reader.int("VACANCY_RATE_API_PER_SECOND", default: 50, in: 1...1_000_000),
            burst: try reader.int("VACANCY_RATE_API_BURST", default: 100, in: 1...1_000_000))
        streamLimit = RateLimit(
            perSecond: try reader.int("VACANCY_RATE_SSE_PER_SECOND", default: 2, in: 1...1_000_000),
            burst: try reader.int("VACANCY_RATE_SSE_BURST", default: 20, in: 1...1_000_000))
        corsOrigins = Set(
            reader.string("VACANCY_CORS_ORIGINS", default: "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty })
        upstreamTimeout = try reader.milliseconds("VACANCY_UPSTREAM_TIMEOUT_MS", default: 10_000, in: 10...600_000)
        connectTimeout = try reader.milliseconds("VACANCY_UPSTREAM_CONNECT_TIMEOUT_MS", default: 1000, in: 10...60_000)
        healthInterval = try reader.milliseconds("VACANCY_UPSTREAM_HEALTH_MS", default: 1000, in: 50...60_000)
        let demo = try reader.bool("VACANCY_DEMO", default: false)
        let demoKey = reader.string("VACANCY_DEMO_KEY", default: "vacancy-dev-key", secret: true)
        self.demoKey = demo ? demoKey : nil
        sendTimeout = try SendTimeout.read(&reader)
        tls = try TLSSettings.read(&reader, portVariable: "VACANCY_ROUTER_TLS_PORT", defaultPort: 8443)
    }

    /// A comma-separated list of base URLs, each `http://` or `https://` with a host (and
    /// nothing after the port but an optional `/`), none twice.
    static func baseURLs(_ text: String, variable: String) throws -> [String] {
        let expected = "a comma-separated list of http:// or https:// base URLs (http://host:port)"
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var urls: [String] = []
        for item in items {
            let url = item.hasSuffix("/") ? String(item.dropLast()) : item
            guard let components = URLComponents(string: url), let scheme = components.scheme, ["http", "https"].contains(scheme),
                let host = components.host, !host.isEmpty, components.path.isEmpty, components.query == nil, components.fragment == nil,
                components.user == nil
            else {
                throw ConfigReader.InvalidValue(
                    name: variable, value: text, expected: expected + (item.isEmpty ? "; an entry is empty" : "; \"\(item)\" is not one"))
            }
            guard !urls.contains(url) else {
                throw ConfigReader.InvalidValue(name: variable, value: text, expected: expected + "; \"\(item)\" is named twice")
            }
            urls.append(url)
        }
        return urls
    }
}
