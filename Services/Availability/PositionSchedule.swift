import Foundation

/// When each session's moved positions are told. A line whose head moves a hundred times a
/// second would otherwise cost every waiting customer a hundred events a second; instead a
/// session is passed at most once per `interval` (its first move at once, the ones after it
/// together when the interval is up). A pass walks the line from the front a few entries per
/// statement, each statement going on after the last entry the one before it reached, so it
/// ends however fast the line keeps moving, and a long line never holds up the change drain
/// (and the offers in it) for more than one small statement. The leader keeps this in
/// memory; a new leader starts with every session that has a line pending, and a pass only
/// tells positions that differ from the ones last told (`waitlist_positions`).
struct PositionSchedule {
    /// A pass under way: its session, and the line (`waitlist_entries.line`) it has told up to.
    struct Pass: Equatable, Sendable {
        var session: UUID
        var after: Int64
    }

    let interval: Duration
    /// Sessions whose lines moved since their last pass began.
    private var pending: Set<UUID> = []
    /// Passes under way, by session.
    private var passing: [UUID: Int64] = [:]
    private var lastPassed: [UUID: ContinuousClock.Instant] = [:]

    init(interval: Duration) {
        self.interval = interval
    }

    var isIdle: Bool { pending.isEmpty && passing.isEmpty }

    /// Sessions whose waiting entries may have moved.
    mutating func linesChanged(_ sessions: some Sequence<UUID>) {
        pending.formUnion(sessions)
    }

    /// The passes to go on with at `now`: those under way, and a new one from the front for
    /// each pending session whose interval is up.
    mutating func passes(at now: ContinuousClock.Instant) -> [Pass] {
        for session in pending where passing[session] == nil && lastPassed[session].map({ now - $0 >= interval }) ?? true {
            pending.remove(session)
            passing[session] = 0
        }
        return passing.map { Pass(session: $0.key, after: $0.value) }
    }

    /// What a statement of the passes did: for each session, the line it told up to, or nil
    /// when its pass reached the end of the line.
    mutating func told(_ reached: [UUID: Int64?], at now: ContinuousClock.Instant) {
        for (session, after) in reached {
            if let after {
                passing[session] = after
            } else {
                passing[session] = nil
                lastPassed[session] = now
            }
        }
        lastPassed = lastPassed.filter { now - $0.value < interval }
    }

    /// How long until a statement of some pass is due: nil when none is pending.
    func untilNextDue(at now: ContinuousClock.Instant) -> Duration? {
        if !passing.isEmpty { return .zero }
        return pending.map { session in lastPassed[session].map { max(.zero, interval - (now - $0)) } ?? .zero }.min()
    }
}
