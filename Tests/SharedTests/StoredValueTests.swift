import Shared
import Testing

/// A status or kind read from the database is one this build knows, or an error: never another case.
@Suite struct StoredValueTests {
    @Test func aKnownValueIsItsCaseAndAnUnknownOneIsAnError() throws {
        #expect(try BookingStatus.stored("held", column: "bookings.status") == .held)
        #expect(try ChangeKind.stored("booking.rescheduled", column: "changes.kind") == .bookingRescheduled)
        #expect(throws: UnknownStoredValue.self) { try SessionStatus.stored("postponed", column: "sessions.status") }
        #expect(throws: UnknownStoredValue.self) { try BookingStatus.stored("", column: "bookings.status") }
    }
}
