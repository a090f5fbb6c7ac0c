import Crypto
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

/// One request's claim on an `Idempotency-Key`: who sent it, the key, what makes a retry
/// "the same request" and the lock that lets one request with the key run at a time. Every
/// statement that honours a key binds these values, so each rule has one definition here.
struct IdempotencyClaim: Sendable {
    let caller: String
    let key: String
    /// SHA-256 (hex) of the operation and its normalised body.
    let fingerprint: String
    /// The transaction-scoped advisory lock of (caller, key): its first 8 SHA-256 bytes.
    let lockID: Int64

    init(caller: String, key: String, operation: String, body: some Encodable) throws {
        try self.init(
            caller: caller, key: key, operation: operation + "\n" + String(decoding: JSONCoding.encoder.encode(body), as: UTF8.self))
    }

    /// The claim of a request whose `Idempotency-Key` is optional (confirm, cancel, leave): nil without one.
    static func optional(_ request: Request, context: VacancyRequestContext, operation: String) throws -> IdempotencyClaim? {
        try IdempotencyStore.key(from: request, required: false).map {
            IdempotencyClaim(caller: context.caller ?? "anonymous", key: $0, operation: operation)
        }
    }

    init(caller: String, key: String, operation: String) {
        self.caller = caller
        self.key = key
        fingerprint = SHA256.hash(data: Data(operation.utf8)).map { String(format: "%02x", $0) }.joined()
        lockID = SHA256.hash(data: Data((caller + "\n" + key).utf8)).prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }
}

/// Idempotency keys after the IETF Idempotency-Key draft, kept in the same transaction as
/// the change they protect: same key and body → the stored answer again; same key, other
/// body → 422; same key while the first is still running → 409. Only successful answers
/// are stored, so a request that was refused can be retried with the same key. A record
/// counts for `ttlHours` after it was made; past that the key is free again.
struct IdempotencyStore: Sendable {
    let ttlHours: Int

    /// The SQL test that a row of `idempotency_keys` still counts, with the TTL in hours given by `ttlHours` (a
    /// placeholder such as `$5`, or a literal): the one definition every statement uses.
    static func isLive(ttlHours: String) -> String {
        "(idempotency_keys.created_at >= now() - make_interval(hours => \(ttlHours)::int))"
    }

    private var isLive: String { Self.isLive(ttlHours: String(ttlHours)) }

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

    enum Outcome {
        /// The key is new (or its record expired): go ahead, then `store`.
        case claimed
        /// The same request was answered before.
        case replay(StoredResponse)
    }

    /// Claims the key for this transaction or explains why not.
    func claim(_ claim: IdempotencyClaim, on connection: PostgresConnection) async throws -> Outcome {
        let rows = try await connection.query(
            """
            WITH lock AS (
                SELECT pg_try_advisory_xact_lock(\(claim.lockID)) AS acquired
            ), claim AS (
                INSERT INTO idempotency_keys (caller, key, fingerprint)
                SELECT \(claim.caller), \(claim.key), \(claim.fingerprint) FROM lock WHERE acquired
                ON CONFLICT (caller, key) DO UPDATE
                    SET fingerprint = EXCLUDED.fingerprint, status_code = NULL, response_body = NULL, created_at = now()
                    WHERE NOT \(unescaped: isLive)
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
            SELECT fingerprint = \(claim.fingerprint), status_code, response_body
            FROM idempotency_keys WHERE caller = \(claim.caller) AND key = \(claim.key)
            """,
            logger: .vacancyQuiet
        ).collect()
        guard let row = stored.first else { throw Self.inFlight() }
        let (sameRequest, status, body) = try row.decode((Bool, Int?, String?).self)
        return .replay(try Self.replay(sameRequest: sameRequest, status: status, body: body))
    }

    /// What a live record of the key answers: the stored response, or why there is none to replay.
    static func replay(sameRequest: Bool, status: Int?, body: String?, location: String? = nil) throws -> StoredResponse {
        guard sameRequest else { throw reused() }
        guard let status, let body else { throw inFlight() }
        return StoredResponse(status: status, body: body, location: location)
    }

    func store(_ claim: IdempotencyClaim, response: StoredResponse, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            UPDATE idempotency_keys SET status_code = \(response.status), response_body = \(response.body)
            WHERE caller = \(claim.caller) AND key = \(claim.key)
            """,
            logger: .vacancyQuiet
        )
    }

    /// Frees the key of `claim` if its record no longer counts.
    func forgetExpired(_ claim: IdempotencyClaim, on connection: PostgresConnection) async throws {
        try await connection.query(
            "DELETE FROM idempotency_keys WHERE caller = \(claim.caller) AND key = \(claim.key) AND NOT \(unescaped: isLive)",
            logger: .vacancyQuiet
        )
    }

    /// Deletes records that no longer count, a batch at a time.
    func prune(on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            DELETE FROM idempotency_keys WHERE (caller, key) IN (
                SELECT caller, key FROM idempotency_keys WHERE NOT \(unescaped: isLive) LIMIT 1000
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
