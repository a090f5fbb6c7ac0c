import Foundation
import Testing

@testable import Availability

/// When moved positions are told: a session's first move at once, later ones together when
/// its interval is up; a pass goes on from where it reached until the end of the line.
@Suite struct PositionScheduleTests {
    let a = UUID()
    let b = UUID()

    @Test func aSessionIsPassedAtOnceThenAtMostOncePerInterval() {
        var schedule = PositionSchedule(interval: .seconds(1))
        let start = ContinuousClock.now
        #expect(schedule.isIdle && schedule.untilNextDue(at: start) == nil)
        schedule.linesChanged([a])
        #expect(schedule.passes(at: start) == [.init(session: a, after: 0)])
        schedule.told([a: nil], at: start)
        #expect(schedule.isIdle)
        schedule.linesChanged([a, b])
        let later = start + .milliseconds(300)
        #expect(schedule.passes(at: later) == [.init(session: b, after: 0)], "a was passed 300 ms ago, b never")
        schedule.told([b: nil], at: later)
        #expect(schedule.passes(at: later).isEmpty)
        #expect(schedule.untilNextDue(at: later) == .milliseconds(700))
        #expect(schedule.passes(at: start + .seconds(1)) == [.init(session: a, after: 0)])
    }

    @Test func aPassGoesOnFromWhereItReachedUntilTheEnd() {
        var schedule = PositionSchedule(interval: .seconds(1))
        let start = ContinuousClock.now
        schedule.linesChanged([a])
        _ = schedule.passes(at: start)
        schedule.told([a: 42], at: start)
        #expect(schedule.untilNextDue(at: start) == .zero)
        // The line moves again meanwhile: the pass still goes on from 42, and ends.
        schedule.linesChanged([a])
        #expect(schedule.passes(at: start) == [.init(session: a, after: 42)])
        schedule.told([a: nil], at: start + .milliseconds(5))
        // …and the move during it is told by the next pass, an interval later.
        #expect(!schedule.isIdle)
        #expect(schedule.passes(at: start + .milliseconds(500)).isEmpty)
        #expect(schedule.passes(at: start + .milliseconds(1005)) == [.init(session: a, after: 0)])
    }

    @Test func aZeroIntervalPassesEveryTime() {
        var schedule = PositionSchedule(interval: .zero)
        let start = ContinuousClock.now
        schedule.linesChanged([a])
        _ = schedule.passes(at: start)
        schedule.told([a: nil], at: start)
        schedule.linesChanged([a])
        #expect(schedule.passes(at: start) == [.init(session: a, after: 0)])
    }
}
