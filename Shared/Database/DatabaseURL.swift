import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// A `postgres://user:password@host:port[,host:port…]/database?sslmode=…&target_session_attrs=…`
/// URL, parsed as libpq reads it: several hosts are tried in order for the one that
/// `target_session_attrs` accepts.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    /// One `host:port` of the list.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Which server a connection may end on (libpq's `target_session_attrs`).
    public enum TargetSessionAttributes: String, Sendable, CaseIterable {
        /// Any server that takes the connection.
        case any
        /// A server whose sessions may write (`transaction_read_only` is off).
        case readWrite = "read-write"
        /// A server that is not in recovery (not a standby).
        case primary
    }

    public var endpoints: [Endpoint]
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool
    /// Every Vacancy service writes, so unlike libpq (whose default is `any`) the default
    /// is `read-write`: a list that names a standby never ends on it.
    public var targetSessionAttributes: TargetSessionAttributes
    /// What PostgreSQL shows as `application_name` for these connections
    /// (`pg_stat_activity`): `vacancy-bookings`, `vacancy-fanout`… as each service sets it,
    /// never read from the URL.
    public var applicationName = "vacancy"

    public init(
        endpoints: [Endpoint], username: String, password: String?, database: String, requireTLS: Bool = false,
        targetSessionAttributes: TargetSessionAttributes = .readWrite
    ) {
        precondition(!endpoints.isEmpty, "a database URL names at least one host")
        self.endpoints = endpoints
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
        self.targetSessionAttributes = targetSessionAttributes
    }

    public init(host: String, port: Int, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.init(
            endpoints: [Endpoint(host: host, port: port)], username: username, password: password, database: database,
            requireTLS: requireTLS)
    }

    /// The first host of the list.
    public var host: String {
        get { endpoints[0].host }
        set { endpoints[0].host = newValue }
    }

    /// The first host's port.
    public var port: Int {
        get { endpoints[0].port }
        set { endpoints[0].port = newValue }
    }

    static let expected =
        "postgres://user[:password]@host[:port][,host[:port]…]/database[?sslmode=disable|require][&target_session_attrs=read-write|primary|any]"

    public init(parsing text: String) throws {
        func invalid(_ why: String) -> ConfigReader.InvalidValue {
            ConfigReader.InvalidValue(name: "VACANCY_DATABASE_URL", value: Self.masked(text), expected: "\(Self.expected) (\(why))")
        }
        guard let schemeEnd = text.range(of: "://"), ["postgres", "postgresql"].contains(text[..<schemeEnd.lowerBound].lowercased())
        else { throw invalid("the scheme must be postgres://") }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query = Substring("")
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var username = "postgres"
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let user = parts[0].removingPercentEncoding, !user.isEmpty else { throw invalid("the user name is empty") }
            username = user
            if parts.count == 2 {
                guard let decoded = parts[1].removingPercentEncoding else { throw invalid("the password is not percent-encoded") }
                password = decoded
            }
        }
        let endpoints = try rest.split(separator: ",", omittingEmptySubsequences: false).map { item -> Endpoint in
            guard let endpoint = Self.endpoint(item) else {
                throw invalid(item.isEmpty ? "a host in the list is empty" : "'\(item)' is not host[:port] with a port in 1...65535")
            }
            return endpoint
        }
        var sslmode = "disable"
        var attributes = TargetSessionAttributes.readWrite
        for pair in query.split(separator: "&") {
            let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = keyValue.count == 2 ? String(keyValue[1]).removingPercentEncoding ?? "" : ""
            switch keyValue[0] {
            case "sslmode":
                guard ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(value) else {
                    throw invalid("sslmode '\(value)' is not one of libpq's")
                }
                sslmode = value
            case "target_session_attrs":
                guard let parsed = TargetSessionAttributes(rawValue: value) else {
                    throw invalid("target_session_attrs '\(value)' is not read-write, primary or any (a standby cannot take writes)")
                }
                attributes = parsed
            default:
                continue  // libpq takes many more (connect_timeout, application_name…); Vacancy sets its own.
            }
        }
        guard let database = String(path).removingPercentEncoding else { throw invalid("the database name is not percent-encoded") }
        self.init(
            endpoints: endpoints, username: username, password: password, database: database.isEmpty ? "postgres" : database,
            requireTLS: ["require", "verify-ca", "verify-full"].contains(sslmode), targetSessionAttributes: attributes)
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func endpoint(_ text: Substring) -> Endpoint? {
        var host: Substring
        var port: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                port = after.dropFirst()
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            host = parts[0]
            port = parts.count == 2 ? parts[1] : nil
        }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: ".-_:%"))
        guard !host.isEmpty, host.unicodeScalars.allSatisfy(allowed.contains) else { return nil }
        guard let port else { return Endpoint(host: String(host), port: 5432) }
        guard let number = Int(port), (1...65535).contains(number) else { return nil }
        return Endpoint(host: String(host), port: number)
    }

    /// The same URL pointing at another database on the same servers.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The same URL naming only `endpoint`.
    public func only(_ endpoint: Endpoint) -> DatabaseURL {
        var copy = self
        copy.endpoints = [endpoint]
        return copy
    }

    /// The URL with the password masked, safe to log.
    public var description: String {
        let credentials = password == nil ? username : "\(username):****"
        let hosts = endpoints.map(\.description).joined(separator: ",")
        let attributes =
            endpoints.count > 1 || targetSessionAttributes != .readWrite
            ? "?target_session_attrs=\(targetSessionAttributes.rawValue)" : ""
        return "postgres://\(credentials)@\(hosts)/\(database)\(attributes)"
    }

    private static func masked(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        let afterScheme = text[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? afterScheme.endIndex
        guard let at = afterScheme[..<authorityEnd].lastIndex(of: "@"),
            let colon = afterScheme[..<at].firstIndex(of: ":")
        else { return text }
        return String(text[..<afterScheme.index(after: colon)]) + "****" + String(text[at...])
    }
}

/// No host of a database URL would take a connection of the kind it asks for.
public struct NoSuitableHost: Error, CustomStringConvertible {
    /// What each host said, in the list's order.
    public let attempts: [(endpoint: DatabaseURL.Endpoint, outcome: String)]
    public let wanted: DatabaseURL.TargetSessionAttributes

    public var description: String {
        let tried = attempts.map { "\($0.endpoint): \($0.outcome)" }.joined(separator: "; ")
        return "no \(wanted == .any ? "reachable" : "writable") host (\(tried))"
    }
}

extension DatabaseURL {
    /// How long a direct connection attempt to one host may take before the next is tried.
    public static let hostConnectTimeout: TimeAmount = .seconds(2)

    /// Opens a single connection outside any pool (for LISTEN and for session-level locks)
    /// to the first host, in the list's order, that takes it and that
    /// `targetSessionAttributes` accepts.
    public func connect(logger: Logger, id: Int = 0) async throws -> PostgresConnection {
        var attempts: [(endpoint: Endpoint, outcome: String)] = []
        for endpoint in endpoints {
            do {
                let connection = try await connect(to: endpoint, logger: logger, id: id)
                do {
                    if let refusal = try await refusal(of: connection, logger: logger) {
                        attempts.append((endpoint, refusal))
                        try? await connection.close()
                        continue
                    }
                    return connection
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                attempts.append((endpoint, Self.brief(error)))
            }
        }
        throw DatabaseUnavailable(reason: NoSuitableHost(attempts: attempts, wanted: targetSessionAttributes).description)
    }

    /// The first of the list's hosts that would take a connection now, and what the others said.
    public func findSuitableHost(logger: Logger) async -> Result<Endpoint, NoSuitableHost> {
        var attempts: [(endpoint: Endpoint, outcome: String)] = []
        for endpoint in endpoints {
            do {
                let connection = try await connect(to: endpoint, logger: logger, id: 0)
                let reason: String?
                do {
                    reason = try await refusal(of: connection, logger: logger)
                } catch {
                    reason = Self.brief(error)
                }
                try? await connection.close()
                guard let reason else { return .success(endpoint) }
                attempts.append((endpoint, reason))
            } catch {
                attempts.append((endpoint, Self.brief(error)))
            }
        }
        return .failure(NoSuitableHost(attempts: attempts, wanted: targetSessionAttributes))
    }

    private func connect(to endpoint: Endpoint, logger: Logger, id: Int) async throws -> PostgresConnection {
        let tls: PostgresConnection.Configuration.TLS =
            requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
        var configuration = PostgresConnection.Configuration(
            host: endpoint.host, port: endpoint.port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = Self.hostConnectTimeout
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
    }

    /// Why `connection`'s server is not the kind asked for, or nil when it is. Asked through a
    /// `ConnectionWatch`, so a connection that is already closed fails the question instead
    /// of leaving it unanswered: PostgresNIO's connect, cancelled just as it completes,
    /// closes the connection it still returns.
    func refusal(of connection: PostgresConnection, logger: Logger) async throws -> String? {
        let watch = ConnectionWatch(connection)
        switch targetSessionAttributes {
        case .any:
            return nil
        case .readWrite:
            let readOnly = try await watch.run {
                try await connection.query("SELECT current_setting('transaction_read_only')", logger: logger).collect()
                    .first?.decode(String.self)
            }
            return readOnly == "off" ? nil : "read-only"
        case .primary:
            let inRecovery = try await watch.run {
                try await connection.query("SELECT pg_is_in_recovery()", logger: logger).collect().first?.decode(Bool.self)
            }
            return inRecovery == false ? nil : "in recovery (a standby)"
        }
    }

    /// An error in a few words, for the list of what each host said.
    static func brief(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            if let underlying = error.underlying { return "\(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }

    /// Runs `body` on a connection of its own, closed afterwards whatever happens.
    public func withConnection<T>(logger: Logger, id: Int = 0, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await connect(logger: logger, id: id)
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}
