import Crypto
import Foundation

/// The claims of a subscriber token: who (`sub`), which private topics, until when.
public struct SubscriberToken: Sendable, Codable, Equatable {
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
}

/// Signs and verifies subscriber tokens: compact JWTs, HMAC-SHA256 (`alg: HS256`) with
/// `VACANCY_TOKEN_SECRET`. Verification accepts HS256 only (never `none`), compares the
/// signature in constant time and refuses expired tokens.
public struct TokenSigner: Sendable {
    /// The secret `make run` and the tests use when `VACANCY_TOKEN_SECRET` is not set. Never for production.
    public static let developmentSecret = "vacancy-dev-token-secret-change-me"

    private let key: SymmetricKey

    public init(secret: String) {
        key = SymmetricKey(data: Data(secret.utf8))
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed, unsupportedAlgorithm, badSignature, expired

        public var description: String {
            switch self {
            case .malformed: "the token is not a well-formed JWT"
            case .unsupportedAlgorithm: "the token is not signed with HS256"
            case .badSignature: "the token's signature does not verify"
            case .expired: "the token has expired"
            }
        }
    }

    public func sign(_ token: SubscriberToken) throws -> String {
        let header = Self.base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = Self.base64URL(try JSONEncoder().encode(token))
        let signingInput = header + "." + payload
        let signature = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + Self.base64URL(Data(signature))
    }

    public func verify(_ compact: String, now: Date = Date()) throws(Failure) -> SubscriberToken {
        let parts = compact.split(separator: ".", omittingEmptySubsequences: false)
        guard compact.utf8.count <= 8192, parts.count == 3,
            let headerData = Self.decodeBase64URL(parts[0]),
            let payloadData = Self.decodeBase64URL(parts[1]),
            let signature = Self.decodeBase64URL(parts[2])
        else { throw .malformed }
        struct Header: Decodable { let alg: String }
        guard let header = try? JSONDecoder().decode(Header.self, from: headerData) else { throw .malformed }
        guard header.alg == "HS256" else { throw .unsupportedAlgorithm }
        let signingInput = Data((parts[0] + "." + parts[1]).utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else { throw .badSignature }
        guard let token = try? JSONDecoder().decode(SubscriberToken.self, from: payloadData) else { throw .malformed }
        guard Double(token.exp) > now.timeIntervalSince1970 else { throw .expired }
        return token
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
