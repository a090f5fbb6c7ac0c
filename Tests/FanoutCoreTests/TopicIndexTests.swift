import FanoutCore
import Testing

@Suite struct TopicIndexTests {
    final class Member: Sendable {
        let name: String
        init(_ name: String) { self.name = name }
    }

    @Test func membersAreFoundUnderEachTopicTheyFollowUntilTheyLeave() {
        var index = TopicIndex<Member>()
        let ana = Member("ana")
        let ben = Member("ben")
        index.insert(ana, id: 1, topics: ["availability", "availability.session.a", "availability"])
        index.insert(ben, id: 2, topics: ["availability"])
        #expect(index.topicCount == 2)
        #expect(index.count(of: "availability") == 2, "a topic named twice counts its follower once")
        #expect(index.followers(of: "availability.session.a").map(\.name) == ["ana"])
        var seen: [String] = []
        index.forEachFollower(of: "availability") { seen.append($0.name) }
        #expect(seen.sorted() == ["ana", "ben"])

        index.remove(id: 1, topics: ["availability", "availability.session.a"])
        #expect(index.topicCount == 1, "a topic nobody follows any more is dropped")
        #expect(index.followers(of: "availability").map(\.name) == ["ben"])
        #expect(index.followers(of: "availability.session.a").isEmpty)
    }
}
