/// Who follows which topic: members under each topic they follow, a topic kept only while
/// someone follows it. A member following several of an event's topics is found under each
/// (the stream drops the repeats by event id).
///
/// Each topic's followers are one contiguous array in the order they joined (a member that
/// leaves takes the last one into its place), so a dispatch walks an array, not a hash table,
/// and the streams one client opened together (an HTTP/2 connection's) are visited together.
public struct TopicIndex<Member: AnyObject & Sendable>: Sendable {
    private struct Followers: Sendable {
        var members: [Member] = []
        var ids: [Int] = []
        /// Where each member's id is in `members`.
        var position: [Int: Int] = [:]

        mutating func insert(_ member: Member, id: Int) {
            if let at = position[id] {
                members[at] = member
                return
            }
            position[id] = members.count
            members.append(member)
            ids.append(id)
        }

        mutating func remove(id: Int) {
            guard let at = position.removeValue(forKey: id) else { return }
            let last = members.count - 1
            if at != last {
                members[at] = members[last]
                ids[at] = ids[last]
                position[ids[at]] = at
            }
            members.removeLast()
            ids.removeLast()
        }
    }

    private var byTopic: [String: Followers] = [:]

    public init() {}

    /// Topics with at least one follower.
    public var topicCount: Int { byTopic.count }

    public mutating func insert(_ member: Member, id: Int, topics: some Sequence<String>) {
        for topic in Set(topics) { byTopic[topic, default: Followers()].insert(member, id: id) }
    }

    public mutating func remove(id: Int, topics: some Sequence<String>) {
        for topic in Set(topics) {
            byTopic[topic]?.remove(id: id)
            if byTopic[topic]?.members.isEmpty == true { byTopic.removeValue(forKey: topic) }
        }
    }

    /// How many follow each topic that someone follows.
    public var counts: [String: Int] { byTopic.mapValues(\.members.count) }

    /// How many follow `topic`.
    public func count(of topic: String) -> Int { byTopic[topic]?.members.count ?? 0 }

    /// Calls `body` with each follower of `topic`, in the order they joined (but for the
    /// places of those who left).
    public func forEachFollower(of topic: String, _ body: (Member) throws -> Void) rethrows {
        guard let followers = byTopic[topic] else { return }
        for member in followers.members { try body(member) }
    }

    public func followers(of topic: String) -> [Member] {
        byTopic[topic]?.members ?? []
    }
}
