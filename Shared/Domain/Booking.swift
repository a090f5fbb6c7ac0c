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

    /// `columns` with every name qualified by a table alias, for joins.
    public static func columns(from alias: String) -> String {
        columns.split(separator: ",").map { alias + "." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")
    }

    public init(row: PostgresRow) throws {
        try self.init(row: row, offset: 0)
    }

    /// Reads the `columns` starting at column `offset` of `row`.
    public init(row: PostgresRow, offset: Int) throws {
        let columns = row.makeRandomAccess()
        let id = try columns[offset].decode(UUID.self)
        let sessionID = try columns[offset + 1].decode(UUID.self)
        let customerID = try columns[offset + 2].decode(String.self)
        let adultCount = try columns[offset + 3].decode(Int.self)
        let childCount = try columns[offset + 4].decode(Int.self)
        let seats = try columns[offset + 5].decode(Int.self)
        let status = try columns[offset + 6].decode(String.self)
        let expiresAt = try columns[offset + 7].decode(Date?.self)
        let version = try columns[offset + 8].decode(Int64.self)
        let createdAt = try columns[offset + 9].decode(Date.self)
        let updatedAt = try columns[offset + 10].decode(Date.self)
        self.id = id
        self.sessionID = sessionID
        self.customerID = customerID
        self.adultCount = adultCount
        self.childCount = childCount
        self.seats = seats
        self.status = try .stored(status, column: "bookings.status")
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
