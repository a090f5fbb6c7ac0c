import Foundation
import PostgresNIO

/// Where a waitlist entry is: waiting in line, offered seats (a held booking), and then
/// accepted, declined or expired; or left the line.
public enum WaitlistStatus: String, Sendable, Codable, CaseIterable {
    case waiting, offered, accepted, declined, expired, left
}

/// A customer in the line of a full session, for `seats` seats.
public struct WaitlistEntry: Sendable, Encodable {
    public var id: UUID
    public var sessionID: UUID
    public var customerID: String
    public var adultCount: Int
    public var childCount: Int
    public var seats: Int
    public var status: WaitlistStatus
    /// From 1 among the session's waiting entries; nil once the entry no longer waits.
    public var position: Int?
    public var offer: Offer?
    public var offerSeconds: Int
    public var version: Int64
    public var joinedAt: Date
    public var updatedAt: Date

    /// The held booking an entry was offered, and until when it holds (nil once accepted).
    public struct Offer: Sendable, Encodable, Equatable {
        public var bookingID: UUID
        public var expiresAt: Date?

        enum CodingKeys: String, CodingKey {
            case bookingID = "booking_id"
            case expiresAt = "expires_at"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(bookingID.uuidString.lowercased(), forKey: .bookingID)
            try container.encode(expiresAt, forKey: .expiresAt)
        }
    }

    /// Selects entries with their position and offer, by the names `init(row:)` reads;
    /// `w` is `waitlist_entries`, `b` the offer's booking. Append WHERE and ORDER BY.
    public static let select = """
        SELECT w.id, w.session_id, w.customer_id, w.adult_count, w.child_count, w.seats, w.status, w.offer_seconds,
               w.version, w.joined_at, w.updated_at, w.booking_id, b.expires_at AS offer_expires_at,
               CASE WHEN w.status = 'waiting' THEN (
                   SELECT count(*)::int FROM waitlist_entries a WHERE a.session_id = w.session_id AND a.status = 'waiting' AND a.line <= w.line
               ) END AS position
        FROM waitlist_entries w LEFT JOIN bookings b ON b.id = w.booking_id
        """

    /// Reads a row of `select` by column name.
    public init(row: PostgresRow) throws {
        let columns = row.makeRandomAccess()
        id = try columns.column("id").decode(UUID.self)
        sessionID = try columns.column("session_id").decode(UUID.self)
        customerID = try columns.column("customer_id").decode(String.self)
        adultCount = try columns.column("adult_count").decode(Int.self)
        childCount = try columns.column("child_count").decode(Int.self)
        seats = try columns.column("seats").decode(Int.self)
        status = try .stored(try columns.column("status").decode(String.self), column: "waitlist_entries.status")
        offerSeconds = try columns.column("offer_seconds").decode(Int.self)
        version = try columns.column("version").decode(Int64.self)
        joinedAt = try columns.column("joined_at").decode(Date.self)
        updatedAt = try columns.column("updated_at").decode(Date.self)
        position = try columns.column("position").decode(Int?.self)
        let expiresAt = try columns.column("offer_expires_at").decode(Date?.self)
        offer = try columns.column("booking_id").decode(UUID?.self).map {
            Offer(bookingID: $0, expiresAt: status == .offered ? expiresAt : nil)
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, seats, status, position, offer, version
        case sessionID = "session_id"
        case customerID = "customer_id"
        case adultCount = "adult_count"
        case childCount = "child_count"
        case offerSeconds = "offer_seconds"
        case joinedAt = "joined_at"
        case updatedAt = "updated_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id.uuidString.lowercased(), forKey: .id)
        try container.encode(sessionID.uuidString.lowercased(), forKey: .sessionID)
        try container.encode(customerID, forKey: .customerID)
        try container.encode(adultCount, forKey: .adultCount)
        try container.encode(childCount, forKey: .childCount)
        try container.encode(seats, forKey: .seats)
        try container.encode(status, forKey: .status)
        try container.encode(position, forKey: .position)
        try container.encode(offer, forKey: .offer)
        try container.encode(offerSeconds, forKey: .offerSeconds)
        try container.encode(version, forKey: .version)
        try container.encode(joinedAt, forKey: .joinedAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
