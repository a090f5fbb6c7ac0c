import Foundation
import PostgresNIO

/// Where a booking is in its life: a hold becomes confirmed, or expires; either can be cancelled.
public enum BookingStatus: String, Sendable, Codable, CaseIterable {
    case held, confirmed, cancelled, expired
}

/// Seats booked or held on one session for one customer.
public struct Booking: Sendable, Hashable, Codable {
    public var id: UUID
    public var sessionID: UUID
    public var customerID: String
    public var adultCount: Int
    public var childCount: Int
    public var seats: Int
    public var status: BookingStatus
    public var expiresAt: Date?
    public var version: Int64
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: UUID, sessionID: UUID, customerID: String, adultCount: Int, childCount: Int, seats: Int,
        status: BookingStatus, expiresAt: Date?, version: Int64, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.sessionID = sessionID
        self.customerID = customerID
        self.adultCount = adultCount
        self.childCount = childCount
        self.seats = seats
        self.status = status
        self.expiresAt = expiresAt
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// The columns `init(row:)` reads, in order.
    public static let columns =
        "id, session_id, customer_id, adult_count, child_count, seats, status, expires_at, version, created_at, updated_at"

    public init(row: PostgresRow) throws {
        let (id, sessionID, customerID, adultCount, childCount, seats, status, expiresAt, version, createdAt, updatedAt) =
            try row.decode((UUID, UUID, String, Int, Int, Int, String, Date?, Int64, Date, Date).self)
        self.id = id
        self.sessionID = sessionID
        self.customerID = customerID
        self.adultCount = adultCount
        self.childCount = childCount
        self.seats = seats
        self.status = BookingStatus(rawValue: status) ?? .cancelled
        self.expiresAt = expiresAt
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, seats, status, version
        case sessionID = "session_id"
        case customerID = "customer_id"
        case adultCount = "adult_count"
        case childCount = "child_count"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
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
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(version, forKey: .version)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
