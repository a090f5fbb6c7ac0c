import Foundation
import Shared

/// `POST /api/v1/bookings`
struct CreateBookingRequest: StrictDecodable, Encodable {
    static let acceptedFields: Set<String> = ["session_id", "customer_id", "adult_count", "child_count", "hold", "hold_seconds"]

    var sessionID: UUID
    var customerID: String
    var adultCount: Int
    var childCount: Int
    var hold: Bool
    var holdSeconds: Int?

    var seats: Int { adultCount + childCount }

    enum CodingKeys: String, CodingKey {
        case sessionID = "session_id"
        case customerID = "customer_id"
        case adultCount = "adult_count"
        case childCount = "child_count"
        case hold
        case holdSeconds = "hold_seconds"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sessionID = try container.decodeUUID(forKey: .sessionID)
        customerID = try container.decode(String.self, forKey: .customerID)
        adultCount = try container.decodeIfPresent(Int.self, forKey: .adultCount) ?? 0
        childCount = try container.decodeIfPresent(Int.self, forKey: .childCount) ?? 0
        holdSeconds = try container.decodeIfPresent(Int.self, forKey: .holdSeconds)
        hold = try container.decodeIfPresent(Bool.self, forKey: .hold) ?? (holdSeconds != nil)
    }

    /// How long the seats are held, or nil for a booking confirmed at once.
    func holdLength(_ holds: HoldPolicy) -> Int? {
        hold ? (holdSeconds ?? holds.defaultSeconds) : nil
    }

    func validate(holds: HoldPolicy) throws {
        var errors = FieldErrors()
        errors.customer(customerID)
        errors.party(adultCount: adultCount, childCount: childCount)
        if let holdSeconds {
            errors.range(holdSeconds, holds.allowed, field: "hold_seconds")
            if !hold { errors.add("hold", "must not be false when hold_seconds is given") }
        }
        try errors.check()
    }
}

/// `POST /api/v1/bookings/{id}/reschedule`
struct RescheduleRequest: StrictDecodable, Encodable {
    static let acceptedFields: Set<String> = ["session_id"]
    var sessionID: UUID

    enum CodingKeys: String, CodingKey {
        case sessionID = "session_id"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sessionID = try container.decodeUUID(forKey: .sessionID)
    }
}
