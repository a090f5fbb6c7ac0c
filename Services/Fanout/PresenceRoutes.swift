import Foundation
import Hummingbird
import Shared

/// `GET /api/v1/presence?topic=…`: how many streams follow each public topic, cluster-wide.
struct PresenceRoutes {
    let presence: Presence

    struct Answer: Encodable {
        /// When the other instances' counts were read (null before the first report): old
        /// while PostgreSQL is unreachable.
        let at: Date?
        let topics: [String: Int]

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(at, forKey: .at)  // null before the first report, not left out
            try container.encode(topics, forKey: .topics)
        }

        enum CodingKeys: String, CodingKey { case at, topics }
    }

    func register(on router: Router<VacancyRequestContext>) {
        router.get("/api/v1/presence") { request, _ -> Response in
            let topics = try Self.topics(request.uri.formQueryParameters.getAll("topic").map { String($0) })
            let (at, counts) = presence.counts(of: topics)
            return try JSONResponse.make(Answer(at: at, topics: counts), headers: [.cacheControl: "no-store"])
        }
    }

    /// 1–32 public topics, without repeats (checked as `/events` checks them); a missing,
    /// malformed or private one is a 400 naming it.
    static func topics(_ values: [String]) throws -> [String] {
        let topics = try FanoutStream.topics(values, per: "request")
        if let hidden = topics.first(where: { Topic.kind(of: $0).map(Topic.isPrivate) ?? false }) {
            throw Problem.badParameter("topic", "'\(hidden.prefix(80))' is private: presence is counted for public topics only")
        }
        return topics
    }
}
