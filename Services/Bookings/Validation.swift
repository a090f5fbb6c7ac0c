import Foundation
import Shared

/// Collects every field problem of a request, so one answer names them all.
struct FieldErrors {
    private(set) var errors: [Problem.FieldError] = []

    mutating func add(_ field: String, _ message: String) {
        errors.append(.init(field: field, message: message))
    }

    /// A trimmed label (course type, location): 1–100 printable characters.
    mutating func label(_ value: String, field: String) -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed.count > 100 {
            add(field, "must be 1 to 100 characters")
        } else if trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            add(field, "must not contain control characters")
        }
        return trimmed
    }

    /// Free text (a session's notes): at most 2,000 characters, line breaks and tabs allowed,
    /// no other control character (PostgreSQL's text cannot hold a NUL at all).
    mutating func notes(_ value: String, field: String = "notes") {
        if value.count > 2000 {
            add(field, "must be at most 2000 characters")
        } else if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !["\n", "\r", "\t"].contains($0) }) {
            add(field, "must not contain control characters other than line breaks and tabs")
        }
    }

    /// Session times: start before end, within 2000–2100, at most 14 days long.
    mutating func times(startsAt: Date, endsAt: Date) {
        let earliest = Date(timeIntervalSince1970: 946_684_800)  // 2000-01-01
        let latest = Date(timeIntervalSince1970: 4_102_444_800)  // 2100-01-01
        if !(earliest..<latest).contains(startsAt) { add("starts_at", "must be between 2000-01-01 and 2100-01-01") }
        if !(earliest..<latest).contains(endsAt) { add("ends_at", "must be between 2000-01-01 and 2100-01-01") }
        if endsAt <= startsAt {
            add("ends_at", "must be after starts_at")
        } else if endsAt.timeIntervalSince(startsAt) > 14 * 86_400 {
            add("ends_at", "must be at most 14 days after starts_at")
        }
    }

    /// An IANA time zone name (`VenueTime.names`); returns it.
    mutating func timeZone(_ name: String, field: String = "time_zone") -> String {
        if VenueTime.zone(named: name) == nil {
            add(field, "must be an IANA time zone name such as Europe/London or America/New_York (\"\(name.prefix(60))\" is not one)")
        }
        return name
    }

    mutating func range(_ value: Int, _ range: ClosedRange<Int>, field: String) {
        if !range.contains(value) { add(field, "must be between \(range.lowerBound) and \(range.upperBound)") }
    }

    /// A party: adult and child counts each 0–100, together at least one seat.
    mutating func party(adultCount: Int, childCount: Int) {
        let counts = 0...100
        range(adultCount, counts, field: "adult_count")
        range(childCount, counts, field: "child_count")
        if counts.contains(adultCount) && counts.contains(childCount) && adultCount + childCount < 1 {
            add("adult_count", "adult_count + child_count must be at least 1")
        }
    }

    /// A customer id (see `CustomerID`).
    mutating func customer(_ id: String) {
        if !CustomerID.isValid(id) { add("customer_id", CustomerID.rule) }
    }

    func check() throws {
        if !errors.isEmpty { throw Problem.invalidRequest(errors) }
    }
}

/// A customer id from another system: 1–128 characters of letters, digits and `._:@-`.
enum CustomerID {
    static let rule = "must be 1 to 128 characters of letters, digits and . _ : @ -"

    /// The `customer_id` query parameter, checked: nil when absent, a 400 when malformed.
    static func query(_ value: Substring?) throws -> String? {
        guard let value = value.map(String.init) else { return nil }
        guard isValid(value) else { throw Problem.badParameter("customer_id", rule) }
        return value
    }

    static func isValid(_ text: String) -> Bool {
        (1...128).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
                    || [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "-")].contains(byte)
            }
    }
}
