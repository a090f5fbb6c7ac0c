import Crypto
import Foundation
import JWTKit
import Synchronization

/// The claims of a subscriber token: who (`sub`), which private topics, until when.
public struct SubscriberToken: JWTPayload, Equatable {
    public var sub: String
    public var topics: [String]
    /// Expiry, seconds since 1970 (JWT `exp`).
    public var exp: Int64
    /// Issued at, seconds since 1970 (JWT `iat`).
    public var iat: Int64

    public init(sub: String, topics: [String], expires: Date, issued: Date = Date()) {
        self.sub = sub
        self.topics = topics
        self.exp = Int64(expires.timeIntervalSince1970.rounded(.down))
        self.iat = Int64(issued.timeIntervalSince1970.rounded(.down))
    }

    public var expiresAt: Date { Date(timeIntervalSince1970: Double(exp)) }

    public func covers(_ topic: String) -> Bool { topics.contains(topic) }

    public func isExpired(at now: Date) -> Bool { Double(exp) <= now.timeIntervalSince1970 }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        if isExpired(at: Date()) { throw SubscriberTokenVerifier.Failure.expired }
    }
}

/// Mints subscriber tokens: compact JWTs signed HS256 with `VACANCY_TOKEN_SECRET`, by
/// jwt-kit's key collection.
public struct TokenSigner: Sendable {
    /// The secret `make run` and the tests use when `VACANCY_TOKEN_SECRET` is not set. Never for production.
    public static let developmentSecret = "vacancy-dev-token-secret-change-me"

    /// The collection with the HMAC key added (adding is the actor's, so it is awaited once).
    private let keys: Task<JWTKeyCollection, Never>

    public init(secret: String) {
        let key = HMACKey(from: secret)
        keys = Task { await JWTKeyCollection().add(hmac: key, digestAlgorithm: .sha256) }
    }

    public func sign(_ token: SubscriberToken) async throws -> String {
        try await keys.value.sign(token, header: ["typ": "JWT"])
    }
}

/// Checks subscriber tokens where a stream is opened, on the channel's event loop and
/// without suspending: HS256 with `VACANCY_TOKEN_SECRET`, and ES256 or EdDSA with the keys
/// of a JWKS (`VACANCY_TOKEN_JWKS_URL`), picked by the token's `kid`, so an existing
/// identity provider can mint them. jwt-kit parses the token and its JWKS and holds the
/// public keys; the key set is swapped whole when the JWKS is fetched again, and an
/// unknown `kid` raises `unknownKeySeen` so the refresher fetches at once. Never `none`,
/// never a public key used as an HMAC secret: a token's `alg` must be its key's.
///
/// jwt-kit's own `JWTKeyCollection.verify` is an actor's async method: every stream
/// opened on every event loop would queue through that one actor.
public final class SubscriberTokenVerifier: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed, unsupportedAlgorithm, unknownKey, badSignature, expired

        public var description: String {
            switch self {
            case .malformed: "the token is not a well-formed JWT"
            case .unsupportedAlgorithm: "the token is not signed with HS256, ES256 or EdDSA"
            case .unknownKey: "the token's kid names no key of the configured JWKS"
            case .badSignature: "the token's signature does not verify"
            case .expired: "the token has expired"
            }
        }
    }

    /// Algorithms a JWKS key may bring.
    public static let asymmetricAlgorithms: Set<String> = ["ES256", "EdDSA"]

    private let hs256: HS256
    private let published = Mutex<[String: any JWTAlgorithm]>([:])
    /// Raised when a token names a `kid` the key set does not hold.
    public let unknownKeySeen = WakeSignal()

    public init(secret: String) {
        hs256 = HS256(secret: secret)
    }

    public func verify(_ compact: String, now: Date = Date()) throws(Failure) -> SubscriberToken {
        let bytes = Array(compact.utf8)
        guard bytes.count <= 8192, let lastDot = bytes.lastIndex(of: UInt8(ascii: ".")) else { throw .malformed }
        let header: JWTHeader
        let token: SubscriberToken
        let signature: Data
        do {
            (header, token, signature) = try DefaultJWTParser().parse(bytes, as: SubscriberToken.self)
        } catch {
            throw .malformed
        }
        let algorithm: any JWTAlgorithm
        switch header.alg {
        case "HS256":
            algorithm = hs256
        case let alg? where Self.asymmetricAlgorithms.contains(alg):
            guard let kid = header.kid else { throw .unknownKey }
            guard let key = published.withLock({ $0[kid] }) else {
                unknownKeySeen.raise()
                throw .unknownKey
            }
            guard key.name == alg else { throw .unsupportedAlgorithm }
            algorithm = key
        default:
            throw .unsupportedAlgorithm
        }
        guard (try? algorithm.verify(signature, signs: bytes[..<lastDot])) == true else { throw .badSignature }
        guard !token.isExpired(at: now) else { throw .expired }
        return token
    }

    /// Replaces the key set with the ES256 and EdDSA keys of `jwks` (each needs a `kid`;
    /// others are skipped and named in `skipped`).
    @discardableResult
    public func install(jwks data: Data) async throws -> (installed: [String], skipped: [String]) {
        let jwks = try JSONDecoder().decode(JWKS.self, from: data)
        let collection = JWTKeyCollection()
        var keys: [String: any JWTAlgorithm] = [:]
        var skipped: [String] = []
        for jwk in jwks.keys {
            let kid = jwk.keyIdentifier?.string
            guard let kid, let alg = Self.algorithm(of: jwk) else {
                skipped.append(kid ?? "(no kid)")
                continue
            }
            do {
                try await collection.add(jwk: jwk)
                keys[kid] = try await collection.getKey(for: jwk.keyIdentifier, alg: alg)
            } catch {
                skipped.append(kid)
            }
        }
        let installed = keys.keys.sorted()
        published.withLock { $0 = keys }
        return (installed, skipped)
    }

    /// The algorithm a JWK's key signs with: its `alg`, else what its curve implies.
    static func algorithm(of jwk: JWK) -> String? {
        let alg: String? =
            if let algorithm = jwk.algorithm {
                algorithm.rawValue
            } else if jwk.keyType == .ecdsa, jwk.curve?.rawValue == "P-256" {
                "ES256"
            } else if jwk.keyType == .octetKeyPair, jwk.curve?.rawValue == "Ed25519" {
                "EdDSA"
            } else {
                nil
            }
        return alg.flatMap { asymmetricAlgorithms.contains($0) ? $0 : nil }
    }
}

/// HS256 as a jwt-kit algorithm, so an HMAC token is checked like any other: HMAC-SHA256,
/// compared in constant time.
struct HS256: JWTAlgorithm {
    let key: SymmetricKey
    var name: String { "HS256" }

    init(secret: String) {
        key = SymmetricKey(data: Data(secret.utf8))
    }

    func sign(_ plaintext: some DataProtocol) throws -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: plaintext, using: key))
    }

    func verify(_ signature: some DataProtocol, signs plaintext: some DataProtocol) throws -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(Data(signature), authenticating: Data(plaintext), using: key)
    }
}
