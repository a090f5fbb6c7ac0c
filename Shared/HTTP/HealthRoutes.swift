import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One thing a service needs before it can take traffic (the database, a listener, …).
public struct ReadinessCheck: Sendable {
    public let name: String
    public let check: @Sendable () async -> Bool

    public init(name: String, check: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.check = check
    }

    public static func database(_ database: Database) -> ReadinessCheck {
        ReadinessCheck(name: "database") { await database.isReachable() }
    }
}

extension Router where Context == VacancyRequestContext {
    /// `GET /healthz` (the process answers), `GET /readyz` (every check passes, else 503)
    /// and `GET /metrics` (Prometheus text).
    public func addHealthRoutes(service: String, checks: [ReadinessCheck]) {
        get("/healthz") { _, _ in
            Self.json(["status": .string("ok"), "service": .string(service)])
        }
        get("/readyz") { _, _ in
            var results: [String: JSONValue] = [:]
            await withTaskGroup(of: (String, Bool).self) { group in
                for check in checks {
                    group.addTask { (check.name, await check.check()) }
                }
                for await (name, ok) in group {
                    results[name] = .string(ok ? "up" : "down")
                }
            }
            let ready = results.values.allSatisfy { $0 == .string("up") }
            if !ready {
                throw Problem(
                    "not-ready",
                    title: "Not ready",
                    status: .serviceUnavailable,
                    detail: "Some dependencies are down: "
                        + results.filter { $0.value != .string("up") }.keys.sorted().joined(separator: ", "),
                    extensions: ["checks": .object(results), "service": .string(service)],
                    headers: [.retryAfter: "1"]
                )
            }
            return Self.json(["status": .string("ready"), "service": .string(service), "checks": .object(results)])
        }
        get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: Observability.prometheusText()))
            )
        }
    }

    static func json(_ object: [String: JSONValue]) -> Response {
        JSONResponse.make(object)
    }
}

/// Builds `application/json` responses in Vacancy's JSON dialect.
public enum JSONResponse {
    public static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        // Encoding our own Encodable types cannot fail; an empty object is the safe fallback.
        let data = (try? JSONCoding.encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
