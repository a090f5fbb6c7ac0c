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
    /// and `GET /metrics` (Prometheus text: `metrics`, then the process-wide registry).
    public func addHealthRoutes(service: String, checks: [ReadinessCheck], metrics: AppMetrics) {
        get("/healthz") { _, _ in
            try Self.json(["status": .string("ok"), "service": .string(service)])
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
            return try Self.json(["status": .string("ready"), "service": .string(service), "checks": .object(results)])
        }
        get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.prometheusText()))
            )
        }
    }

    static func json(_ object: [String: JSONValue]) throws -> Response {
        try JSONResponse.make(object)
    }
}

/// Builds `application/json` responses in Vacancy's JSON dialect.
public enum JSONResponse {
    /// A value that does not encode is our fault: the error goes on to become a logged 500, never a 200 with a stand-in body.
    public static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        let data = try JSONCoding.encoder.encode(value)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
