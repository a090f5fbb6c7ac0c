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

    @Test func followersComeInTheOrderTheyJoinedAndOneWhoLeavesGivesItsPlaceToTheLast() {
        var index = TopicIndex<Member>()
        let members = (1...6).map { Member("m\($0)") }
        for (id, member) in zip(1..., members) { index.insert(member, id: id, topics: ["availability"]) }
        #expect(index.followers(of: "availability").map(\.name) == ["m1", "m2", "m3", "m4", "m5", "m6"])
        index.remove(id: 2, topics: ["availability"])
        #expect(index.followers(of: "availability").map(\.name) == ["m1", "m6", "m3", "m4", "m5"])
        // The moved member is found again by its id.
        index.remove(id: 6, topics: ["availability"])
        index.remove(id: 1, topics: ["availability"])
        #expect(index.followers(of: "availability").map(\.name) == ["m4", "m5", "m3"])
        index.insert(Member("m7"), id: 7, topics: ["availability"])
        #expect(index.followers(of: "availability").map(\.name) == ["m4", "m5", "m3", "m7"])
        #expect(index.count(of: "availability") == 4)
    }
}
