import Foundation
import Shared
import Testing

/// A venue's clock: the local day and RFC 3339 local time of an instant, offsets and all.
@Suite struct VenueTimeTests {
    static func at(_ text: String) -> Date { RFC3339.date(from: text)! }

    @Test(arguments: [
        ("2027-07-01T08:00:00Z", "Europe/London", "2027-07-01T09:00:00+01:00", "2027-07-01"),
        ("2027-01-11T09:00:00Z", "Europe/London", "2027-01-11T09:00:00+00:00", "2027-01-11"),
        // The night the clocks go forward (01:00 GMT → 02:00 BST) and back (02:00 BST → 01:00 GMT).
        ("2027-03-28T00:30:00Z", "Europe/London", "2027-03-28T00:30:00+00:00", "2027-03-28"),
        ("2027-03-28T01:30:00Z", "Europe/London", "2027-03-28T02:30:00+01:00", "2027-03-28"),
        ("2027-10-30T23:30:00Z", "Europe/London", "2027-10-31T00:30:00+01:00", "2027-10-31"),
        ("2027-10-31T01:30:00Z", "Europe/London", "2027-10-31T01:30:00+00:00", "2027-10-31"),
        ("2027-03-14T05:30:00Z", "America/New_York", "2027-03-14T00:30:00-05:00", "2027-03-14"),
        ("2027-11-07T03:30:00Z", "America/New_York", "2027-11-06T23:30:00-04:00", "2027-11-06"),
        ("2027-11-07T08:00:00Z", "America/New_York", "2027-11-07T03:00:00-05:00", "2027-11-07"),
        // East of UTC+12, and offsets in half and quarter hours.
        ("2027-01-10T19:00:00Z", "Pacific/Kiritimati", "2027-01-11T09:00:00+14:00", "2027-01-11"),
        ("2027-01-11T03:30:00Z", "Asia/Kolkata", "2027-01-11T09:00:00+05:30", "2027-01-11"),
        ("2027-01-11T03:15:00Z", "Asia/Kathmandu", "2027-01-11T09:00:00+05:45", "2027-01-11"),
        ("2027-01-11T02:30:00Z", "America/St_Johns", "2027-01-10T23:00:00-03:30", "2027-01-10"),
        ("2027-01-11T09:00:00Z", "UTC", "2027-01-11T09:00:00+00:00", "2027-01-11"),
    ])
    func localTimeAndDay(instant: String, zone: String, local: String, day: String) throws {
        let timeZone = try #require(VenueTime.zone(named: zone))
        #expect(VenueTime.rfc3339(Self.at(instant), in: timeZone) == local)
        #expect(VenueTime.day(of: Self.at(instant), in: timeZone).description == day)
        #expect(RFC3339.date(from: local) == Self.at(instant), "the local time names the same instant")
    }

    @Test func onlyZoneNamesAreZones() {
        for name in ["Europe/London", "America/New_York", "Pacific/Kiritimati", "UTC"] { #expect(VenueTime.zone(named: name) != nil) }
        for name in ["", "Mars/Olympus", "europe/london", "GMT+5", "+01:00", "BST", "Europe/London "] {
            #expect(VenueTime.zone(named: name) == nil, "\(name)")
        }
    }
}
