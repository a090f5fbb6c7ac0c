import Foundation
import NIOHTTP1
import Shared
import TestSupport

@testable import Bookings

/// A running bookings service on its own fresh database, with helpers to call it.
struct BookingsHarness: Sendable {
    static let apiKey = "test-key-0123456789"
    let baseURL: String
    let db: TestDatabase

    var auth: (String, String) { ("Authorization", "Bearer \(Self.apiKey)") }

    func post(_ path: String, _ body: String?, key: String? = nil, headers: [(String, String)] = []) async throws -> TestResponse {
        var all = [auth] + headers
        if let key { all.append(("Idempotency-Key", key)) }
        return try await TestHTTP.send(.POST, baseURL + path, headers: all, body: body)
    }

    func get(_ path: String) async throws -> TestResponse {
        try await TestHTTP.send(.GET, baseURL + path, headers: [auth])
    }

    func patch(_ path: String, _ body: String) async throws -> TestResponse {
        try await TestHTTP.send(.PATCH, baseURL + path, headers: [auth], body: body)
    }

    /// Creates a session starting `daysAhead` days from now; returns its id.
    func createSession(capacity: Int = 12, daysAhead: Int = 7, courseType: String = "First Aid at Work", location: String = "Location A")
        async throws -> String
    {
        let request = SessionRequest(
            courseType: courseType, location: location, capacity: capacity, startsAt: Date().addingTimeInterval(Double(daysAhead) * 86_400),
            length: 8 * 3600)
        let response = try await post("/api/v1/sessions", request.body)
        guard response.status == 201, let id = response.string("id") else {
            throw HarnessError("creating a session answered \(response.status): \(response.text)")
        }
        return id
    }

    /// Books (or holds) seats; returns the whole response.
    func book(
        session: String, adults: Int, children: Int = 0, customer: String = "customer-1", holdSeconds: Int? = nil,
        key: String = UUID().uuidString
    ) async throws -> TestResponse {
        let hold = holdSeconds.map { ", \"hold_seconds\": \($0)" } ?? ""
        return try await post(
            "/api/v1/bookings",
            #"{"session_id": "\#(session)", "customer_id": "\#(customer)", "adult_count": \#(adults), "child_count": \#(children)\#(hold)}"#,
            key: key
        )
    }

    /// The session's row as the database has it.
    func sessionRow(_ id: String) async throws -> (capacity: Int, booked: Int, held: Int) {
        let rows = try await db.database.query("SELECT capacity, booked, held FROM sessions WHERE id = \(UUID(uuidString: id)!)")
        return try rows[0].decode((Int, Int, Int).self)
    }

    /// The database host the service's pool is on now (`vacancy_database_pool_host` is 1 for it).
    func databaseEndpoint() async -> DatabaseURL.Endpoint? {
        guard let text = try? await PrometheusText.fetch(baseURL + "/metrics").text else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("vacancy_database_pool_host{") {
            guard line.split(separator: " ").last.flatMap({ Double($0) }) == 1 else { continue }
            guard let start = line.firstIndex(of: "\""), let end = line.lastIndex(of: "\""), start < end else { continue }
            let host = line[line.index(after: start)..<end]
            guard let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]) else { continue }
            return DatabaseURL.Endpoint(host: String(host[..<colon]), port: port)
        }
        return nil
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a bookings service (its own database, an ephemeral port) for the length of `body`.
func withBookings<T: Sendable>(
    sweepInterval: Duration = .milliseconds(200),
    notifyChanges: Bool = true,
    _ body: @Sendable (BookingsHarness) async throws -> T
) async throws -> T {
    try await TestDatabase.with { db in
        try await withBookingsService(on: db, sweepInterval: sweepInterval, notifyChanges: notifyChanges, body)
    }
}

/// Runs a bookings service against an existing test database (several may share one).
/// `acquireTimeout` is longer than production's 3 s: the races queue hundreds of requests
/// on 8 connections while the tests that run beside them load the same cores, and a request
/// answered 503 after waiting its turn says nothing about the rule under test. The outage
/// test sets its own.
func withBookingsService<T: Sendable>(
    on db: TestDatabase,
    sweepInterval: Duration = .milliseconds(200),
    notifyChanges: Bool = true,
    acquireTimeout: Duration = .seconds(30),
    _ body: @Sendable (BookingsHarness) async throws -> T
) async throws -> T {
    var configuration = try BookingsConfiguration(
        common: CommonConfiguration(
            serviceName: "bookings",
            database: DatabaseConfiguration(url: db.url, maximumConnections: 8, acquireTimeout: acquireTimeout)
        ),
        environment: ["VACANCY_API_KEYS": "test:\(BookingsHarness.apiKey)"]
    )
    configuration.notifyChanges = notifyChanges
    configuration.sweepInterval = sweepInterval
    let ready = configuration
    return try await withRunningApp({ onRunning in
        BookingsApp.make(configuration: ready, logger: TestEnvironment.logger, onServerRunning: onRunning)
    }) { baseURL in
        try await body(BookingsHarness(baseURL: baseURL, db: db))
    }
}
