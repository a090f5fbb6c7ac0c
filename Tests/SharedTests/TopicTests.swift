import Foundation
import Shared
import Testing

/// Topic names are made and read by one type: whatever a builder makes, `kind(of:)` reads as that kind.
@Suite struct TopicTests {
    @Test func everyBuiltTopicReadsAsItsOwnKind() throws {
        let day = try #require(CalendarDay("2027-03-28"))
        let session = UUID()
        let built: [(String, Topic.Kind)] = [
            (Topic.allAvailability, .allAvailability), (Topic.alerts, .alerts), (Topic.admin, .admin),
            (Topic.day(day), .day), (Topic.session(session), .session), (Topic.course("Paediatric First Aid"), .course),
            (Topic.location("Location B"), .location), (Topic.user("cust-42"), .user),
        ]
        for (name, kind) in built {
            #expect(Topic.kind(of: name) == kind, "\(name)")
        }
        #expect(Topic.day(day) == "availability.2027-03-28")
        #expect(Topic.session(session) == "availability.session.\(session.uuidString.lowercased())")
        #expect(Topic.isPrivate(.user) && Topic.isPrivate(.admin) && !Topic.isPrivate(.session))
    }

    @Test func malformedTopicsHaveNoKind() {
        for name in ["", "availability.", "availability.2026-13-45", "availability.session.NOT-A-UUID", "user.", "nope", "AVAILABILITY"] {
            #expect(Topic.kind(of: name) == nil, "\(name)")
        }
    }
}
