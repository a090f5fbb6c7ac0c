import Foundation
import HTTPTypes
import Hummingbird
import PostgresNIO
import Shared

/// One request's work in one transaction with its `Idempotency-Key` (optional): the claim,
/// the work, the stored answer; a retry of the same request gets that answer again. Wakes
/// the calculator once a change has committed.
struct IdempotentTransaction: Sendable {
    let database: Database
    let idempotency: IdempotencyStore
    let notifier: ChangeNotifier

    func respond<Value: Encodable & Sendable>(
        _ claim: IdempotencyClaim?,
        status: HTTPResponse.Status,
        _ work: @escaping @Sendable (PostgresConnection) async throws -> (Value, changed: Bool)
    ) async throws -> Response {
        let idempotency = self.idempotency
        let (stored, replayed, changed) = try await database.transaction { connection -> (StoredResponse, Bool, Bool) in
            if let claim, case .replay(let stored) = try await idempotency.claim(claim, on: connection) {
                return (stored, true, false)
            }
            let (value, changed) = try await work(connection)
            let body = String(decoding: try JSONCoding.encoder.encode(value), as: UTF8.self)
            let stored = StoredResponse(status: status.code, body: body)
            if let claim {
                try await idempotency.store(claim, response: stored, on: connection)
            }
            return (stored, false, changed)
        }
        if changed { notifier.signal() }
        return Self.response(stored, replayed: replayed)
    }

    static func response(_ stored: StoredResponse, replayed: Bool) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if replayed { headers[.idempotentReplayed] = "true" }
        if let location = stored.location { headers[.location] = location }
        return Response(status: .init(code: stored.status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: stored.body)))
    }
}
