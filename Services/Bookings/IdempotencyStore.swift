import Foundation
import HTTPTypes
import Hummingbird
import PostgresNIO
import Shared

extension HTTPField.Name {
    static let idempotentReplayed = Self("Idempotent-Replayed")!
}

/// The stored outcome of a request made with an `Idempotency-Key`.
struct StoredResponse: Sendable {
    var status: Int
    var body: String
    /// The `Location` of a created booking, kept with the answer.
    var location: String? = nil
}

/// Idempotency keys after the IETF Idempotency-Key draft, kept in the same transaction as
/// the change they protect: same key and body → the stored answer again; same key, other
/// body → 422; same key while the first is still running → 409. Only successful answers
/// are stored, so a request that was refused can be retried with the same key.
struct IdempotencyStore: Sendable {
    let ttlHours: Int

    /// Reads and checks the `Idempotency-Key` header: 1–255 visible ASCII characters.
    static func key(from request: Request, required: Bool) throws -> String? {
        guard var value = request.headers[.idempotencyKey] else {
            if required {
                throw Problem(
                    "idempotency-key-missing", title: "Idempotency-Key required", status: .badRequest,
                    detail: "Send an Idempotency-Key header (a UUID, say) so a retried request books only once.",
                    errors: [.init(field: "Idempotency-Key", message: "is required")]
                )
            }
            return nil
        }
        // The draft sends the key as a structured-field string; accept it bare too.
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
        guard (1...255).contains(value.utf8.count), value.utf8.allSatisfy({ (33...126).contains($0) }) else {
            throw Problem.badParameter("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
        }
        return value
    }

    enum Claim {
        /// The key is new (or its record expired): go ahead, then `store`.
        case claimed
        /// The same request was answered before.
        case replay(StoredResponse)
    }

    /// Claims `key` for this transaction or explains why not.
    func claim(caller: String, key: String, fingerprint: String, on connection: PostgresConnection) async throws -> Claim {
        let lockName = caller + "\n" + key
        let rows = try await connection.query(
            """
            WITH lock AS (
                SELECT pg_try_advisory_xact_lock(hashtextextended(\(lockName), 7)) AS acquired
            ), claim AS (
                INSERT INTO idempotency_keys (caller, key, fingerprint)
                SELECT \(caller), \(key), encode(sha256(convert_to(\(fingerprint), 'UTF8')), 'hex') FROM lock WHERE acquired
                ON CONFLICT (caller, key) DO UPDATE
                    SET fingerprint = EXCLUDED.fingerprint, status_code = NULL, response_body = NULL, created_at = now()
                    WHERE idempotency_keys.created_at < now() - make_interval(hours => \(ttlHours)::int)
                RETURNING 1
            )
            SELECT acquired, EXISTS (SELECT 1 FROM claim) FROM lock
            """,
            logger: .vacancyQuiet
        ).collect()
        let (acquired, claimed) = try rows[0].decode((Bool, Bool).self)
        guard acquired else { throw Self.inFlight() }
        if claimed { return .claimed }
        let stored = try await connection.query(
            """
            SELECT fingerprint = encode(sha256(convert_to(\(fingerprint), 'UTF8')), 'hex'), status_code, response_body
            FROM idempotency_keys WHERE caller = \(caller) AND key = \(key)
            """,
            logger: .vacancyQuiet
        ).collect()
        guard let row = stored.first else { throw Self.inFlight() }
        let (sameRequest, status, body) = try row.decode((Bool, Int?, String?).self)
        guard sameRequest else { throw Self.reused() }
        guard let status, let body else { throw Self.inFlight() }
        return .replay(StoredResponse(status: status, body: body))
    }

    func store(caller: String, key: String, response: StoredResponse, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            UPDATE idempotency_keys SET status_code = \(response.status), response_body = \(response.body)
            WHERE caller = \(caller) AND key = \(key)
            """,
            logger: .vacancyQuiet
        )
    }

    /// Deletes records older than the retention window, a batch at a time.
    func prune(on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            DELETE FROM idempotency_keys WHERE (caller, key) IN (
                SELECT caller, key FROM idempotency_keys
                WHERE created_at < now() - make_interval(hours => \(ttlHours)::int) LIMIT 1000
            )
            """,
            logger: .vacancyQuiet
        )
    }

    static func reused() -> Problem {
        Problem(
            "idempotency-key-reused", title: "Idempotency-Key reused", status: .unprocessableContent,
            detail: "This Idempotency-Key was already used with a different request.",
            errors: [.init(field: "Idempotency-Key", message: "was used for a different request")]
        )
    }

    static func inFlight() -> Problem {
        Problem(
            "idempotency-key-in-flight", title: "Request in progress", status: .conflict,
            detail: "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers: [.retryAfter: "1"]
        )
    }
}
