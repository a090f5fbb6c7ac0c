import Foundation

/// When a session counts as in high demand: starting within `window` and more than
/// `percent` of its seats taken (booked or held). Alerted once per session.
struct HighDemandRule: Sendable {
    var percent: Int = 80
    var window: Duration = .seconds(48 * 3600)

    var windowSeconds: Int { Int(window.components.seconds) }
}

/// How full a session looks (its `AvailabilityLevel`) and whether it is in high demand,
/// each defined once, as SQL over a `sessions` row. Every statement that publishes, lists
/// or alerts on sessions selects these expressions beside the row they judge, so all of
/// them agree, at the statement's own `now()`. The thresholds come from configuration:
/// literals here, or placeholders (`$2`) where a prepared statement binds them.
struct SeatRules: Sendable {
    var lowSeats: Int = 3
    var highDemand = HighDemandRule()

    /// `closed` once cancelled, completed or started; `full` with no seat left; `low` with
    /// `lowSeats` or fewer left; `open` otherwise.
    static func level(of s: String, lowSeats: String) -> String {
        """
        (CASE WHEN \(s).status <> 'scheduled' OR \(s).starts_at <= now() THEN 'closed' \
        WHEN \(s).capacity - \(s).booked - \(s).held <= 0 THEN 'full' \
        WHEN \(s).capacity - \(s).booked - \(s).held <= \(lowSeats)::int THEN 'low' \
        ELSE 'open' END)
        """
    }

    /// Scheduled, not started, starting within the window, and more than `percent` of its
    /// seats booked or held.
    static func isHighDemand(of s: String, percent: String, windowSeconds: String) -> String {
        """
        (\(s).status = 'scheduled' AND \(s).capacity > 0 AND \(s).starts_at > now() \
        AND \(s).starts_at <= now() + make_interval(secs => \(windowSeconds)::int) \
        AND (\(s).booked + \(s).held) * 100 > \(s).capacity * \(percent)::int)
        """
    }

    func level(of s: String) -> String { Self.level(of: s, lowSeats: String(lowSeats)) }

    func isHighDemand(of s: String) -> String {
        Self.isHighDemand(of: s, percent: String(highDemand.percent), windowSeconds: String(highDemand.windowSeconds))
    }

    /// Both judgements of session alias `s` as the columns `SessionAvailability(row:prefix:)`
    /// reads with `prefix: "s_"`.
    static func columns(of s: String, lowSeats: String, percent: String, windowSeconds: String) -> String {
        "\(level(of: s, lowSeats: lowSeats)) AS \(s)_level, "
            + "\(isHighDemand(of: s, percent: percent, windowSeconds: windowSeconds)) AS \(s)_high_demand"
    }

    func columns(of s: String) -> String {
        Self.columns(
            of: s, lowSeats: String(lowSeats), percent: String(highDemand.percent), windowSeconds: String(highDemand.windowSeconds))
    }
}
