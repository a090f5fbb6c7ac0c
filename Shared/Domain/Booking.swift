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

    /// The columns `init(row:prefix:)` reads.
    public static let columns =
        "id, session_id, customer_id, adult_count, child_count, seats, status, expires_at, version, created_at, updated_at"

    /// `columns` as a join selects them from table alias `alias`: each named `alias_column`,
    /// so `init(row:prefix:)` reads them by name (`prefix: "alias_"`).
    public static func columns(from alias: String) -> String {
        columns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.map { "\(alias).\($0) AS \(alias)_\($0)" }
            .joined(separator: ", ")
    }

    /// Reads the `columns` by name, each behind `prefix` (`alias_` for `columns(from: alias)`).
    public init(row: PostgresRow, prefix: String = "") throws {
        let columns = row.makeRandomAccess()
        let id = try columns.column(prefix + "id").decode(UUID.self)
        let sessionID = try columns.column(prefix + "session_id").decode(UUID.self)
        let customerID = try columns.column(prefix + "customer_id").decode(String.self)
        let adultCount = try columns.column(prefix + "adult_count").decode(Int.self)
        let childCount = try columns.column(prefix + "child_count").decode(Int.self)
        let seats = try columns.column(prefix + "seats").decode(Int.self)
        let status = try columns.column(prefix + "status").decode(String.self)
        let expiresAt = try columns.column(prefix + "expires_at").decode(Date?.self)
        let version = try columns.column(prefix + "version").decode(Int64.self)
        let createdAt = try columns.column(prefix + "created_at").decode(Date.self)
        let updatedAt = try columns.column(prefix + "updated_at").decode(Date.self)
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
