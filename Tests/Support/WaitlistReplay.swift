import Foundation

/// Replays waitlist transitions in the order they happened (the change log, or the log's
/// `waitlist.updated` events) and notes what breaks the line's rules: an entry offered
/// while not waiting, or while an earlier entry of its session that needed no more seats
/// still waited; an entry whose statuses are not one of the allowed sequences.
public struct WaitlistReplay: Sendable {
    /// What the replay needs to know of an entry.
    public struct Entry: Sendable {
        public var session: UUID
        /// Joining order (`waitlist_entries.line`).
        public var line: Int64
        public var seats: Int

        public init(session: UUID, line: Int64, seats: Int) {
            self.session = session
            self.line = line
            self.seats = seats
        }
    }

    /// Every life an entry may have, told in order.
    public static let allowedSequences: Set<[String]> = [
        ["waiting"], ["waiting", "offered"], ["waiting", "offered", "accepted"], ["waiting", "offered", "declined"],
        ["waiting", "offered", "expired"], ["waiting", "left"], ["waiting", "expired"],
    ]

    private let entries: [UUID: Entry]
    private var waiting: [UUID: Set<UUID>] = [:]
    /// Each entry's statuses in the order told (`waiting` once however often its position moved).
    public private(set) var statuses: [UUID: [String]] = [:]
    public private(set) var offers = 0
    /// Entries offered out of turn, or while not waiting.
    public private(set) var lineJumps: [UUID] = []
    /// Transitions of entries not among `entries`.
    public private(set) var unknown = 0

    public init(entries: [UUID: Entry]) {
        self.entries = entries
    }

    public mutating func apply(_ id: UUID, status: String) {
        // A moved position repeats `waiting`: no transition. Any other repeat is one too many.
        if status == "waiting", statuses[id]?.last == "waiting" { return }
        statuses[id, default: []].append(status)
        guard let entry = entries[id] else {
            unknown += 1
            return
        }
        switch status {
        case "waiting":
            waiting[entry.session, default: []].insert(id)
        case "offered":
            offers += 1
            let line = waiting[entry.session] ?? []
            let passedOver = line.contains { other in
                guard let earlier = entries[other] else { return false }
                return earlier.line < entry.line && earlier.seats <= entry.seats
            }
            if !line.contains(id) || passedOver { lineJumps.append(id) }
            waiting[entry.session]?.remove(id)
        default:
            waiting[entry.session]?.remove(id)
        }
    }

    /// Entries whose statuses are not an allowed sequence (an entry offered twice among them).
    public var badSequences: [UUID: [String]] { statuses.filter { !Self.allowedSequences.contains($0.value) } }
    /// Entries told `offered` more than once.
    public var offeredTwice: Int { statuses.values.filter { $0.filter { $0 == "offered" }.count > 1 }.count }
    /// Each entry's last status told.
    public var lastStatus: [UUID: String] { statuses.compactMapValues(\.last) }
}
