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
}
