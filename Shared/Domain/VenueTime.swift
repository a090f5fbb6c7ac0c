import Foundation
import Synchronization

/// A venue's clock: IANA time zone names (`Europe/London`), the local day and the local
/// time of an instant there. The names are the system tz database's (`tzdata.zi`: its
/// zones and links), the one PostgreSQL reads too (it computes `sessions.local_date` with
/// `AT TIME ZONE`); Foundation's own list lacks current names such as `Asia/Kolkata`.
public enum VenueTime {
    /// The names a session's `time_zone` may take: the tz database's zones and links that
    /// Foundation can compute offsets for, and `UTC`.
    public static let names: Set<String> = {
        var names = Set(TimeZone.knownTimeZoneIdentifiers).union(["UTC"])
        if let text = try? String(contentsOfFile: "/usr/share/zoneinfo/tzdata.zi", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                // `Z Name …` declares a zone; `L Target Name` a link to one.
                if fields.first == "Z", fields.count > 1 { names.insert(String(fields[1])) }
                if fields.first == "L", fields.count > 2 { names.insert(String(fields[2])) }
            }
        }
        return names.filter { TimeZone(identifier: $0) != nil }
    }()

    private static let zones = Mutex<[String: TimeZone]>([:])

    /// The zone called `name`, if it is one of `names`.
    public static func zone(named name: String) -> TimeZone? {
        guard names.contains(name) else { return nil }
        return zones.withLock { zones in
            if let zone = zones[name] { return zone }
            let zone = TimeZone(identifier: name)
            zones[name] = zone
            return zone
        }
    }

    /// The zone called `name`; UTC for a name that is not one (never stored: names are
    /// checked where they come in).
    public static func zone(_ name: String) -> TimeZone {
        zone(named: name) ?? TimeZone(secondsFromGMT: 0)!
    }

    /// The day `date` falls on in `zone`.
    public static func day(of date: Date, in zone: TimeZone) -> CalendarDay {
        let local = date.timeIntervalSince1970.rounded(.down) + Double(zone.secondsFromGMT(for: date))
        return CalendarDay(daysSinceEpoch: Int(local).floorDivided(by: 86_400).quotient)
    }

    /// `date` as RFC 3339 with the zone's offset at that instant, to the second:
    /// `2027-07-01T09:00:00+01:00`.
    public static func rfc3339(_ date: Date, in zone: TimeZone) -> String {
        let offset = zone.secondsFromGMT(for: date)
        let local = Int(date.timeIntervalSince1970.rounded(.down)) + offset
        let (days, seconds) = local.floorDivided(by: 86_400)
        let day = CalendarDay(daysSinceEpoch: days)
        let sign = offset < 0 ? "-" : "+"
        let magnitude = abs(offset) / 60
        return day.description + "T" + RFC3339.pad(seconds / 3600, 2) + ":" + RFC3339.pad(seconds % 3600 / 60, 2) + ":"
            + RFC3339.pad(seconds % 60, 2) + sign + RFC3339.pad(magnitude / 60, 2) + ":" + RFC3339.pad(magnitude % 60, 2)
    }
}
