import Foundation
import Shared

/// `POST /api/v1/sessions/{id}/waitlist`
struct JoinWaitlistRequest: StrictDecodable, Encodable {
    static let acceptedFields: Set<String> = ["customer_id", "adult_count", "child_count", "offer_seconds"]

    var customerID: String
    var adultCount: Int
    var childCount: Int
    var offerSeconds: Int?

    var seats: Int { adultCount + childCount }

    enum CodingKeys: String, CodingKey {
        case customerID = "customer_id"
        case adultCount = "adult_count"
        case childCount = "child_count"
        case offerSeconds = "offer_seconds"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        customerID = try container.decode(String.self, forKey: .customerID)
        adultCount = try container.decodeIfPresent(Int.self, forKey: .adultCount) ?? 0
        childCount = try container.decodeIfPresent(Int.self, forKey: .childCount) ?? 0
        offerSeconds = try container.decodeIfPresent(Int.self, forKey: .offerSeconds)
    }

    func validate(offers: OfferPolicy) throws {
        var errors = FieldErrors()
        errors.customer(customerID)
        errors.party(adultCount: adultCount, childCount: childCount)
        if let offerSeconds { errors.range(offerSeconds, offers.allowed, field: "offer_seconds") }
        try errors.check()
    }
}

/// How long an offered seat is held for its customer: the default and the allowed range.
struct OfferPolicy: Sendable {
    static let allowed = 60...86_400
    var defaultSeconds: Int
    var allowed: ClosedRange<Int> { Self.allowed }
}
