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

    /// 1–32 public topics, without repeats; a missing, malformed or private one is a 400 naming it.
    static func topics(_ values: [String]) throws -> [String] {
        guard !values.isEmpty else { throw Problem.badParameter("topic", "at least one topic is required") }
        guard values.count <= Topic.maximumPerSubscription else {
            throw Problem.badParameter("topic", "at most \(Topic.maximumPerSubscription) topics per request, not \(values.count)")
        }
        for value in values {
            guard let kind = Topic.kind(of: value) else {
                throw Problem.badParameter(
                    "topic",
                    "'\(value.prefix(80))' is not a topic: use availability, availability.{YYYY-MM-DD}, availability.session.{id}, "
                        + "availability.course.{course_type}, availability.location.{location} or alerts")
            }
            guard !Topic.isPrivate(kind) else {
                throw Problem.badParameter("topic", "'\(value.prefix(80))' is private: presence is counted for public topics only")
            }
        }
        var seen: Set<String> = []
        return values.filter { seen.insert($0).inserted }
    }
}
