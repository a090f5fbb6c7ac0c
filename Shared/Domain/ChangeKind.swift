/// What happened to a session or booking: the `kind` of a row of `changes`, written by the
/// bookings service and the calculator's clock, read by the calculator (and shown to a
/// customer as a `booking.updated` event's `change`). SQL receives it as a parameter.
public enum ChangeKind: String, Sendable, Codable, CaseIterable {
    case sessionCreated = "session.created"
    case sessionUpdated = "session.updated"
    case sessionStarted = "session.started"
    case sessionHighDemand = "session.high_demand"
    case bookingCreated = "booking.created"
    case bookingConfirmed = "booking.confirmed"
    case bookingCancelled = "booking.cancelled"
    case bookingExpired = "booking.expired"
    case bookingRescheduled = "booking.rescheduled"
    case waitlistJoined = "waitlist.joined"
    case waitlistOffered = "waitlist.offered"
    case waitlistAccepted = "waitlist.accepted"
    case waitlistDeclined = "waitlist.declined"
    case waitlistExpired = "waitlist.expired"
    case waitlistLeft = "waitlist.left"

    /// The waitlist status a `waitlist.*` change leaves its entry in; nil for other kinds.
    public var waitlistStatus: WaitlistStatus? {
        switch self {
        case .waitlistJoined: .waiting
        case .waitlistOffered: .offered
        case .waitlistAccepted: .accepted
        case .waitlistDeclined: .declined
        case .waitlistExpired: .expired
        case .waitlistLeft: .left
        default: nil
        }
    }
}
