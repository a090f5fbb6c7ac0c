import Foundation
import Shared
import TestSupport
import Testing

@testable import Availability
@testable import Bookings
@testable import Fanout

/// Every service's `/openapi.yaml` is a valid OpenAPI document (checked by
/// openapi-spec-validator), and the availability reads and the fan-out's stream are what
/// their documents say, as the bookings contract test checks the bookings API.
@Suite(.serialized, .timeLimit(.minutes(3))) struct OpenAPIDocumentTests {
    /// The Python with openapi-spec-validator: `make test` sets `VACANCY_PYTHON` to its virtual environment's.
    static var python: String { ProcessInfo.processInfo.environment["VACANCY_PYTHON"] ?? "/usr/bin/python3" }

    /// Runs openapi-spec-validator on `yaml`; nil when valid, else what it said.
    static func specProblems(_ yaml: String, name: String) async throws -> String? {
        let folder = TestEnvironment.outputDirectory.appendingPathComponent("openapi")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let document = folder.appendingPathComponent("\(name).yaml")
        let log = folder.appendingPathComponent("\(name).log")
        try yaml.write(to: document, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(at: log)
        let script = "import sys, yaml; from openapi_spec_validator import validate; validate(yaml.safe_load(open(sys.argv[1])))"
        let status = try await runCommand([python, "-c", script, document.path], output: log.path)
        return status == 0 ? nil : String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
    }

    /// The raw bytes `url` streams within `seconds` (curl, so nothing is parsed on the way).
    static func rawStream(_ url: String, seconds: Double, headers: [String] = []) async throws -> String {
        let file = TestEnvironment.outputDirectory.appendingPathComponent("stream-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: file) }
        let arguments = ["/usr/bin/curl", "-sN", "--max-time", String(seconds), "-o", file.path] + headers.flatMap { ["-H", $0] } + [url]
        _ = try await runCommand(arguments)
        return String(decoding: (try? Data(contentsOf: file)) ?? Data(), as: UTF8.self)
    }

    @Test func everyServedDocumentIsValidOpenAPI() async throws {
        try await withBookings { bookings in
            try await withCalculator(on: bookings.db) { availability in
                try await withFanout(on: bookings.db) { fanout in
                    for (name, base, version) in [
                        ("bookings", bookings.baseURL, "3.1"), ("availability", availability, "3.2"), ("fanout", fanout.baseURL, "3.2"),
                    ] {
                        let served = try await TestHTTP.send(.GET, base + "/openapi.yaml")
                        #expect(served.status == 200 && served.contentType == "application/yaml", "\(name)")
                        #expect(served.text.hasPrefix("openapi: \(version)"), "\(name) declares OpenAPI \(version)")
                        let problems = try await Self.specProblems(served.text, name: name)
                        #expect(problems == nil, "\(name)'s /openapi.yaml is not valid: \(problems ?? "")")
                    }
                }
            }
        }
    }

    @Test func theValidatorRejectsAnInvalidDocument() async throws {
        let broken = "openapi: 3.2.0\ninfo: {title: broken}\npaths: {/x: {get: {responses: {'200': {}}}}}\n"
        #expect(try await Self.specProblems(broken, name: "broken") != nil, "a document without info.version and descriptions is refused")
    }

    @Test func availabilityAnswersMatchTheServedDocument() async throws {
        try await withBookings { bookings in
            try await withCalculator(on: bookings.db) { base in
                let served = try await TestHTTP.send(.GET, base + "/openapi.yaml")
                let contract = try OpenAPIContract(yaml: served.text)
                let small = try await bookings.createSession(capacity: 2, daysAhead: 3, courseType: "CPR and AED")
                _ = try await bookings.createSession(capacity: 12, daysAhead: 3, location: "Location B")
                #expect(try await bookings.book(session: small, adults: 2).status == 201)
                await expectEventually(within: 5) { (try? await bookings.db.changesDrained()) == true }
                let day = CalendarDay(date: Date().addingTimeInterval(3 * 86_400)).description

                var exchanges: [(path: String, response: TestResponse)] = []
                for path in [
                    "/api/v1/availability?date=\(day)", "/api/v1/availability?date=\(day)&availability=full",
                    "/api/v1/availability?date=2026-13-40", "/api/v1/availability/sessions/\(small)",
                    "/api/v1/availability/sessions/\(UUID().uuidString.lowercased())", "/api/v1/availability/sessions/nope",
                    "/api/v1/availability/range?start=\(day)&end=\(day)", "/api/v1/availability/range?start=\(day)&end=2000-01-01",
                    "/api/v1/availability/stats?date=\(day)", "/api/v1/availability/trends?days=3", "/api/v1/availability/trends?days=0",
                    "/api/v1/availability/peak-hours?days=2", "/api/v1/availability/alerts", "/api/v1/availability/alerts?kind=sideways",
                    "/api/v1/calendar?view=week&date=\(day)", "/api/v1/calendar?view=month", "/api/v1/calendar?view=year",
                    "/leader", "/healthz", "/readyz",
                ] {
                    exchanges.append((path, try await TestHTTP.send(.GET, base + path)))
                }
                let first = try #require(exchanges.first?.response)
                let etag = try #require(first.headers.first(name: "etag"))
                let notModified = try await TestHTTP.send(
                    .GET, base + "/api/v1/availability?date=\(day)", headers: [("If-None-Match", etag)])
                exchanges.append(("/api/v1/availability", notModified))

                #expect(Set(exchanges.map(\.response.status)).isSuperset(of: [200, 304, 400, 404]), "successes and refusals")
                for (path, response) in exchanges {
                    let problems = contract.violations(
                        method: "GET", path: path, status: response.status, contentType: response.contentType, body: response.body)
                    #expect(problems.isEmpty, "\(path): \(problems.joined(separator: "\n"))")
                }
                // The check itself bites: an undocumented field in a real answer is caught.
                var tampered = try JSONSerialization.jsonObject(with: first.body) as? [String: Any] ?? [:]
                tampered["surprise"] = true
                let caught = contract.violations(
                    method: "GET", path: "/api/v1/availability", status: 200, contentType: "application/json",
                    body: try JSONSerialization.data(withJSONObject: tampered))
                #expect(caught.contains { $0.contains("undocumented property surprise") })
            }
        }
    }

    @Test func streamItemsMatchTheServedDocument() async throws {
        try await withBookings { bookings in
            try await withCalculator(on: bookings.db) { _ in
                try await withFanout(on: bookings.db, configure: { $0.metricsInterval = .seconds(1) }) { fanout in
                    let contract = try OpenAPIContract(yaml: try await TestHTTP.send(.GET, fanout.baseURL + "/openapi.yaml").text)
                    // Two seats left of two: an availability update, a `low` then a `full` alert, the customer's bookings.
                    let session = try await bookings.createSession(capacity: 2, daysAhead: 2)
                    let first = try await bookings.book(session: session, adults: 1, customer: "ada")
                    #expect(first.status == 201)
                    #expect(try await bookings.book(session: session, adults: 1, customer: "ada", holdSeconds: 120).status == 201)
                    // The full session's line: Bea waits, then is offered Ada's cancelled seat.
                    #expect(try await bookings.join(session, customer: "bea").status == 201)
                    #expect(try await bookings.post("/api/v1/bookings/\(try #require(first.string("id")))/cancel", nil).status == 200)
                    await expectEventually(within: 5) { (try? await bookings.db.changesDrained()) == true }

                    let signer = TokenSigner(secret: TokenSigner.developmentSecret)
                    let token = try await signer.sign(
                        SubscriberToken(sub: "ada", topics: ["user.ada", "user.bea", "admin"], expires: Date().addingTimeInterval(2)))
                    let history = try await Self.rawStream(
                        fanout.events(["availability", "alerts", "user.ada", "user.bea", "admin"], query: "&last_event_id=0"), seconds: 3.5,
                        headers: ["Authorization: Bearer \(token)"])
                    let reset = try await Self.rawStream(fanout.events(["availability"], query: "&last_event_id=999999"), seconds: 1)

                    let items = OpenAPIContract.eventStreamItems(history) + OpenAPIContract.eventStreamItems(reset)
                    let kinds = Set(
                        items.compactMap { item -> String? in
                            if case .string(let event)? = item["event"] { return event }
                            return item["retry"] == nil ? nil : "retry"
                        })
                    #expect(
                        kinds.isSuperset(of: [
                            "retry", "availability.updated", "alert", "booking.updated", "waitlist.updated", "metrics", "expired", "reset",
                        ]),
                        "every item kind was seen: \(kinds.sorted())")
                    for (text, name) in [(history, "history"), (reset, "reset")] {
                        let problems = contract.violations(
                            method: "GET", path: "/events", status: 200, contentType: "text/event-stream", body: Data(text.utf8))
                        #expect(problems.isEmpty, "\(name): \(problems.joined(separator: "\n"))")
                    }
                    let refused = try await TestHTTP.send(.GET, fanout.events(["user.ada"]))
                    #expect(refused.status == 401)
                    #expect(
                        contract.violations(
                            method: "GET", path: "/events", status: 401, contentType: refused.contentType, body: refused.body
                        ).isEmpty)
                    // The check bites: an item of no documented kind, and a payload with a wrong field, are caught.
                    let strange = "id: 7\nevent: availability.updated\ndata: {\"session_id\": 1}\n\nevent: gossip\ndata: {}\n\n"
                    let caught = contract.violations(
                        method: "GET", path: "/events", status: 200, contentType: "text/event-stream", body: Data(strange.utf8))
                    #expect(caught.contains { $0.contains("item 0") } && caught.contains { $0.contains("item 1") })
                }
            }
        }
    }
}
