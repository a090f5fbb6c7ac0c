/// Who follows which topic: members by id under each topic they follow, a topic kept only
/// while someone follows it. A member following several of an event's topics is found under
/// each (the stream drops the repeats by event id).
public struct TopicIndex<Member: AnyObject & Sendable>: Sendable {
    private var byTopic: [String: [Int: Member]] = [:]

    public init() {}

    /// Topics with at least one follower.
    public var topicCount: Int { byTopic.count }

    public mutating func insert(_ member: Member, id: Int, topics: some Sequence<String>) {
        for topic in Set(topics) { byTopic[topic, default: [:]][id] = member }
    }

    public mutating func remove(id: Int, topics: some Sequence<String>) {
        for topic in Set(topics) {
            byTopic[topic]?.removeValue(forKey: id)
            if byTopic[topic]?.isEmpty == true { byTopic.removeValue(forKey: topic) }
        }
    }

    /// How many follow each topic that someone follows.
    public var counts: [String: Int] { byTopic.mapValues(\.count) }

    /// How many follow `topic`.
    public func count(of topic: String) -> Int { byTopic[topic]?.count ?? 0 }

    /// Calls `body` with each follower of `topic`.
    public func forEachFollower(of topic: String, _ body: (Member) throws -> Void) rethrows {
        guard let followers = byTopic[topic] else { return }
        for member in followers.values { try body(member) }
    }

    public func followers(of topic: String) -> [Member] {
        byTopic[topic].map { Array($0.values) } ?? []
    }
}
