import Foundation
import Shared
import Testing

/// Request timestamps are read by RFC 3339's own grammar (§5.6), every offset it allows
/// included, and nothing else.
struct RFC3339Tests {
    /// 2026-05-01T09:00:00Z
    static let nineOClock = Date(timeIntervalSince1970: 1_777_626_000)

    @Test(arguments: [
        "2026-05-01T09:00:00Z", "2026-05-01t09:00:00z", "2026-05-01T11:00:00+02:00", "2026-05-01T04:30:00-04:30",
        "2026-05-02T08:59:00+23:59", "2026-04-30T09:01:00-23:59", "2026-05-01T09:00:00.000000Z",
    ])
    func everyFormOfOneInstantReadsTheSame(text: String) {
        #expect(RFC3339.date(from: text) == Self.nineOClock)
    }

    @Test func fractionsOffsetsBeyondEighteenHoursAndLeapSecondsAreRead() throws {
        let fraction = try #require(RFC3339.date(from: "2026-05-01T09:00:00.25Z"))
        #expect(abs(fraction.timeIntervalSince(Self.nineOClock) - 0.25) < 1e-6)
        // Foundation's parser refused this one (offsets beyond ±18 h); the grammar allows it.
        let farOffset = try #require(RFC3339.date(from: "2406-08-30T23:10:22+22:05"))
        #expect(RFC3339.string(from: farOffset) == "2406-08-30T01:05:22Z")
        #expect(RFC3339.date(from: "2026-12-31T23:59:60Z") == RFC3339.date(from: "2027-01-01T00:00:00Z"))
    }

    @Test(arguments: [
        "", "2026-05-01", "2026-05-01T09:00:00", "2026-05-01 09:00:00Z", "2026-05-01T09:00Z", "2026-02-30T09:00:00Z",
        "2026-13-01T09:00:00Z", "2026-05-01T24:00:00Z", "2026-05-01T09:60:00Z", "2026-05-01T09:00:61Z",
        "2026-05-01T09:00:00+24:00", "2026-05-01T09:00:00+02", "2026-05-01T09:00:00+2:00", "2026-05-01T09:00:00.Z",
        "2026-05-01T09:00:00ZZ", "2026-05-01T09:00:00Z ", "+2026-05-01T09:00:00Z", "2026-5-01T09:00:00Z", "２０２６-05-01T09:00:00Z",
    ])
    func anythingElseIsRefused(text: String) {
        #expect(RFC3339.date(from: text) == nil)
    }

    @Test func whatVacancyWritesItReadsBack() throws {
        var date = Date(timeIntervalSince1970: 0)
        while date.timeIntervalSince1970 < 7_258_118_400 {  // to 2200
            #expect(RFC3339.date(from: RFC3339.string(from: date)) == date)
            let precise = date.addingTimeInterval(0.123456)
            let read = try #require(RFC3339.date(from: RFC3339.microseconds(from: precise)))
            #expect(abs(read.timeIntervalSince(precise)) < 1e-6)
            date = date.addingTimeInterval(86_400 * 97 + 3_671)
        }
    }
}
