import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// A `postgres://user:password@host:port/database?sslmode=…` URL, parsed.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool

    public init(host: String, port: Int, username: String, password: String?, database: String, requireTLS: Bool = false) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.requireTLS = requireTLS
    }

    public init(parsing text: String) throws {
        guard let components = URLComponents(string: text),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw ConfigReader.InvalidValue(
                name: "VACANCY_DATABASE_URL", value: Self.masked(text), expected: "postgres://user[:password]@host[:port]/database")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        let sslmode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
        self.init(
            host: host,
            port: components.port ?? 5432,
            username: components.user ?? "postgres",
            password: components.password,
            database: database.isEmpty ? "postgres" : database,
            requireTLS: sslmode == "require" || sslmode == "verify-full"
        )
    }

    /// The same URL pointing at another database on the same server.
    public func with(database: String) -> DatabaseURL {
        var copy = self
        copy.database = database
        return copy
    }

    /// The URL with the password masked, safe to log.
    public var description: String {
        let credentials = password == nil ? username : "\(username):****"
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    private static func masked(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "****"
        return components.string ?? "(unparseable)"
    }
}

extension DatabaseURL {
    /// Opens a single connection outside any pool (for LISTEN and for session-level locks).
    public func connect(logger: Logger, id: Int = 0) async throws -> PostgresConnection {
        let tls: PostgresConnection.Configuration.TLS =
            requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
        return try await PostgresConnection.connect(
            configuration: .init(host: host, port: port, username: username, password: password, database: database, tls: tls),
            id: id,
            logger: logger
        )
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
