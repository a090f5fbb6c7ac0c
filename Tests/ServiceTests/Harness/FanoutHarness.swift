import Foundation
import NIOCore
import NIOPosix
import PostgresNIO
import Shared
import TestSupport

@testable import Fanout

/// A running fan-out: its plain HTTP/1.1 URL and, when started with TLS, its https URL.
struct FanoutHarness: Sendable {
    let baseURL: String
    let tlsURL: String?

    func events(_ topics: [String], query: String = "") -> String {
        baseURL + "/events?"
            + topics.map { "topic=" + $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: ".-_")))! }
            .joined(separator: "&") + query
    }

    func secureEvents(_ topics: [String], query: String = "") -> String? {
        tlsURL.map { FanoutHarness(baseURL: $0, tlsURL: nil).events(topics, query: query) }
    }
}

/// Runs a fan-out against `db` for the length of `body`.
func withFanout<T: Sendable>(
    on db: TestDatabase,
    tls: Bool = false,
    configure: (inout FanoutConfiguration) -> Void = { _ in },
    _ body: @Sendable (FanoutHarness) async throws -> T
) async throws -> T {
    var configuration = try FanoutConfiguration(
        common: CommonConfiguration(serviceName: "fanout", database: DatabaseConfiguration(url: db.url, maximumConnections: 4)))
    configuration.pollInterval = .milliseconds(500)
    var tlsPort: Int?
    if tls {
        let (certificate, key) = try await TestCertificate.paths()
        let port = try freePort()
        configuration.tls = .init(port: port, certificatePath: certificate, keyPath: key)
        tlsPort = port
    }
    configure(&configuration)
    let ready = configuration
    let secureURL = tlsPort.map { "https://127.0.0.1:\($0)" }
    return try await withRunningApp({ onRunning in
        try! FanoutApp.make(configuration: ready, logger: TestEnvironment.logger, onServerRunning: onRunning)
    }) { baseURL in
        // Streams are refused until the feed has read the log head: wait for readiness.
        for _ in 0..<100 {
            if (try? await TestHTTP.send(.GET, baseURL + "/readyz"))?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await body(FanoutHarness(baseURL: baseURL, tlsURL: secureURL))
    }
}

/// A port nothing listens on right now (tests run one at a time, so it stays free).
func freePort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress?.port ?? 0
    try channel.close().wait()
    return port
}

/// A self-signed certificate for 127.0.0.1, made once per test run with openssl (once even
/// when tests that want it start side by side).
enum TestCertificate {
    private static let made = Task { try await make() }

    static func paths() async throws -> (certificate: String, key: String) {
        try await made.value
    }

    private static func make() async throws -> (certificate: String, key: String) {
        let directory = TestEnvironment.outputDirectory.appendingPathComponent("tls")
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let status = try await runCommand([
            "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        guard status == 0 else { throw HarnessError("openssl could not make a test certificate (exit \(status))") }
        return (certificate, key)
    }
}

extension TestDatabase {
    /// Appends events straight to the log (as the calculator would) and wakes the fan-outs.
    /// Returns their ids.
    @discardableResult
    func appendEvents(_ count: Int, topics: [String] = ["availability"], type: String = "availability.updated", padding: Int = 0)
        async throws -> [Int64]
    {
        let rows = try await database.query(
            """
            WITH head AS (SELECT coalesce(max(id), 0) AS last FROM events)
            INSERT INTO events (id, topics, type, payload)
            SELECT head.last + g, \(topics)::text[], \(type), jsonb_build_object('n', head.last + g, 'pad', repeat('x', \(padding)::int))
            FROM head, generate_series(1, \(count)::int) g
            RETURNING id
            """
        )
        _ = try await database.query("NOTIFY vacancy_events")
        return try rows.map { try $0.decode(Int64.self) }.sorted()
    }
}
