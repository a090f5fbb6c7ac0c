import Foundation
import Hummingbird
import Shared

/// `POST /api/v1/tokens`: a signed subscriber token (JWT, HS256, by jwt-kit) that lets a browser follow
/// private topics on the fan-out. Called by a trusted service with its API key, never by
/// the browser itself.
struct TokenRoutes: Sendable {
    let signer: TokenSigner
    let maxBodyBytes: Int

    func register(on group: RouterGroup<VacancyRequestContext>) {
        group.post("tokens") { request, _ in
            let body = try await StrictJSONBody.decode(TokenRequest.self, from: request, limit: maxBodyBytes)
            try body.validate()
            let now = Date()
            let token = SubscriberToken(
                sub: body.sub, topics: body.topics, expires: now.addingTimeInterval(Double(body.ttlSeconds)), issued: now)
            return try JSONResponse.make(
                IssuedToken(token: try await signer.sign(token), sub: token.sub, topics: token.topics, expiresAt: token.expiresAt),
                status: .created)
        }
    }
}

struct TokenRequest: StrictDecodable {
    static let acceptedFields: Set<String> = ["sub", "topics", "ttl_seconds"]
    static let ttlRange = 1...86_400

    var sub: String
    var topics: [String]
    var ttlSeconds: Int

    enum CodingKeys: String, CodingKey {
        case sub, topics
        case ttlSeconds = "ttl_seconds"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sub = try container.decode(String.self, forKey: .sub)
        topics = try container.decode([String].self, forKey: .topics)
        ttlSeconds = try container.decodeIfPresent(Int.self, forKey: .ttlSeconds) ?? 900
    }

    func validate() throws {
        var errors = FieldErrors()
        if !(1...200).contains(sub.count) { errors.add("sub", "must be 1 to 200 characters") }
        if topics.isEmpty || topics.count > Topic.maximumPerSubscription {
            errors.add("topics", "must name 1 to \(Topic.maximumPerSubscription) topics")
        }
        for topic in topics where Topic.kind(of: topic) == nil {
            errors.add("topics", "'\(topic.prefix(80))' is not a topic")
        }
        errors.range(ttlSeconds, Self.ttlRange, field: "ttl_seconds")
        try errors.check()
    }
}

struct IssuedToken: Encodable {
    let token: String
    let sub: String
    let topics: [String]
    let expiresAt: Date

    enum CodingKeys: String, CodingKey {
        case token, sub, topics
        case expiresAt = "expires_at"
    }
}
