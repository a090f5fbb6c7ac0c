import FanoutCore
import NIOCore
import Testing

/// Every transition of a stream's state machine, with no channel and no clock.
@Suite struct StreamStateMachineTests {
    static func event(_ id: Int64, session: String? = nil, size: Int = 10) -> StreamFrame {
        StreamFrame(id: id, bytes: ByteBuffer(repeating: UInt8(ascii: "x"), count: size), conflationKey: session)
    }

    static let comment = StreamFrame(id: nil, bytes: ByteBuffer(string: ": bye\n\n"))

    static func ids(_ frames: [StreamFrame]) -> [Int64?] { frames.map(\.id) }

    static func live(_ limits: StreamStateMachine.Limits = .init(maximumFrames: 100, maximumBytes: 10_000)) -> StreamStateMachine {
        var machine = StreamStateMachine(limits: limits)
        machine.attached()
        _ = machine.historyLoaded([], after: 0)
        return machine
    }

    @Test func framesThatArriveDuringTheHistoryFollowItWithoutDuplicates() {
        var machine = StreamStateMachine(limits: .init(maximumFrames: 100, maximumBytes: 10_000))
        #expect(machine.state == .registered)
        machine.attached()
        #expect(machine.state == .replaying)
        // Live events arrive while the history (ids 1–3) is read; 3 is in both.
        guard case .none = machine.push(Self.event(3), writable: true) else {
            Issue.record("nothing is written before the head")
            return
        }
        _ = machine.push(Self.event(4), writable: true)
        guard case .start(let frames) = machine.historyLoaded([Self.event(1), Self.event(2), Self.event(3)], after: 0) else {
            Issue.record("the head comes with the history")
            return
        }
        #expect(Self.ids(frames) == [1, 2, 3, 4])
        #expect(machine.state == .live)
        #expect(machine.lastWritten == 4)
    }

    @Test func aLiveStreamWritesAtOnceAndDropsWhatItHasWritten() {
        var machine = Self.live()
        guard case .write(let first) = machine.push(Self.event(5), writable: true) else {
            Issue.record("written at once")
            return
        }
        #expect(Self.ids(first) == [5])
        guard case .none = machine.push(Self.event(5), writable: true) else {
            Issue.record("a duplicate id is dropped")
            return
        }
        guard case .write(let comment) = machine.push(Self.comment, writable: true) else {
            Issue.record("comments have no id")
            return
        }
        #expect(Self.ids(comment) == [nil])
    }

    @Test func whatWaitsForTheChannelIsWrittenWhenItTakesMoreInOrder() {
        var machine = Self.live()
        for id in Int64(1)...3 { _ = machine.push(Self.event(id), writable: false) }
        #expect(machine.waiting.frames == 3)
        guard case .none = machine.writabilityChanged(false) else {
            Issue.record("still not writable")
            return
        }
        guard case .write(let frames) = machine.writabilityChanged(true) else {
            Issue.record("drained")
            return
        }
        #expect(Self.ids(frames) == [1, 2, 3])
        #expect(machine.waiting.frames == 0)
        // Writable again but something still waits: it goes before the new frame.
        _ = machine.push(Self.event(4), writable: false)
        guard case .write(let next) = machine.push(Self.event(5), writable: true) else {
            Issue.record("written")
            return
        }
        #expect(Self.ids(next) == [4, 5])
    }

    @Test func aBacklogPastItsThresholdKeepsTheNewestStateOfEachSession() {
        // Conflated from 100 bytes; cut past 50 frames or 400 bytes.
        var machine = Self.live(.init(maximumFrames: 50, maximumBytes: 400, conflateAtBytes: 100))
        var id: Int64 = 0
        for round in 0..<20 {
            for session in ["a", "b", "c"] {
                id += 1
                guard case .none = machine.push(Self.event(id, session: session), writable: false) else {
                    Issue.record("cut in round \(round) although conflation keeps it small")
                    return
                }
            }
        }
        #expect(machine.state == .live)
        let coalesced = machine.takeCoalesced()
        #expect(coalesced > 0)
        guard case .write(let frames) = machine.writabilityChanged(true) else {
            Issue.record("drained")
            return
        }
        // The newest of a, b and c are 58, 59 and 60; whatever else is left is older but in order.
        let written = frames.compactMap(\.id)
        #expect(written == written.sorted(), "ids stay increasing")
        #expect(Array(written.suffix(3)) == [58, 59, 60])
        #expect(frames.count <= 10)
    }

    @Test func framesThatCannotBeConflatedAreNeverDroppedAndCutTheStreamPastTheBound() {
        var machine = Self.live(.init(maximumFrames: 5, maximumBytes: 10_000, conflateAtBytes: 20))
        for id in Int64(1)...5 {
            guard case .none = machine.push(Self.event(id), writable: false) else {
                Issue.record("within the bound")
                return
            }
        }
        let coalesced = machine.takeCoalesced()
        #expect(coalesced == 0)
        guard case .abort(.backlogFull) = machine.push(Self.event(6), writable: false) else {
            Issue.record("cut past the bound")
            return
        }
        #expect(machine.state == .closed)
        guard case .none = machine.push(Self.event(7), writable: true) else {
            Issue.record("nothing after the end")
            return
        }
        let wasOpen = machine.channelClosed()
        #expect(wasOpen == false, "already let go")
    }

    @Test func finishWritesWhatWaitsThenTheFinalFrameThenEnds() {
        var machine = Self.live()
        _ = machine.push(Self.event(1), writable: false)
        guard case .writeAndEnd(let frames, let start) = machine.finish(final: Self.comment) else {
            Issue.record("ends")
            return
        }
        #expect(Self.ids(frames) == [1, nil])
        #expect(!start)
        #expect(machine.state == .draining)
        guard case .none = machine.push(Self.event(2), writable: true) else {
            Issue.record("nothing after the end")
            return
        }
        guard case .none = machine.finish(final: nil) else {
            Issue.record("ends once")
            return
        }
        let wasOpen = machine.channelClosed()
        #expect(wasOpen)
        #expect(machine.state == .closed)
    }

    @Test func finishBeforeTheHistoryEndsRightAfterIt() {
        var machine = StreamStateMachine(limits: .init(maximumFrames: 100, maximumBytes: 10_000))
        machine.attached()
        _ = machine.push(Self.event(4), writable: true)
        guard case .none = machine.finish(final: Self.comment) else {
            Issue.record("waits for the history")
            return
        }
        guard case .writeAndEnd(let frames, let start) = machine.historyLoaded([Self.event(3)], after: 2) else {
            Issue.record("history, then the end")
            return
        }
        #expect(start)
        #expect(Self.ids(frames) == [3, 4, nil])
        #expect(machine.state == .draining)
    }

    @Test func aHistoryThatCannotBeReadIsRefused() {
        var machine = StreamStateMachine(limits: .init(maximumFrames: 100, maximumBytes: 10_000))
        machine.attached()
        _ = machine.push(Self.event(1), writable: true)
        guard case .refuse = machine.historyFailed() else {
            Issue.record("refused")
            return
        }
        #expect(machine.state == .closed)
        #expect(machine.waiting.frames == 0)
        guard case .none = machine.historyLoaded([], after: 0) else {
            Issue.record("no stream after a refusal")
            return
        }
    }

    @Test func aClientThatGoesAwayAtAnyPointClosesTheStreamOnce() {
        for step in 0..<4 {
            var machine = StreamStateMachine(limits: .init(maximumFrames: 100, maximumBytes: 10_000))
            if step > 0 { machine.attached() }
            if step > 1 { _ = machine.historyLoaded([], after: 0) }
            if step > 2 { _ = machine.finish(final: nil) }
            _ = machine.push(Self.event(1), writable: false)
            let wasOpen = machine.channelClosed()
            #expect(wasOpen, "step \(step)")
            #expect(machine.state == .closed)
            #expect(machine.waiting.frames == 0)
            let again = machine.channelClosed()
            #expect(!again)
        }
    }

    @Test func aBacklogGoesToTheChannelAChunkAtATimeAndKeepsConflatingMeanwhile() {
        // Frames of 10 bytes, chunks of 30: three frames per write.
        var machine = Self.live(.init(maximumFrames: 100, maximumBytes: 10_000, conflateAtFrames: 8, writeChunkBytes: 30))
        for id in Int64(1)...8 { _ = machine.push(Self.event(id, session: "s\(id)"), writable: false) }
        guard case .write(let first) = machine.writabilityChanged(true) else {
            Issue.record("the first chunk")
            return
        }
        #expect(Self.ids(first) == [1, 2, 3])
        #expect(machine.hasWaiting)
        // While the rest (s4–s8) waits, three newer states of each arrive: past the
        // threshold (doubled since) the superseded ones go.
        _ = machine.writabilityChanged(false)
        var id: Int64 = 8
        var newest: [String: Int64] = [:]
        for _ in 0..<3 {
            for session in 4...8 {
                id += 1
                newest["s\(session)"] = id
                _ = machine.push(Self.event(id, session: "s\(session)"), writable: false)
            }
        }
        var rest: [Int64] = []
        while machine.hasWaiting {
            guard case .write(let frames) = machine.writabilityChanged(true) else {
                Issue.record("more chunks while something waits")
                return
            }
            #expect(frames.count <= 3)
            rest += frames.compactMap(\.id)
        }
        #expect(rest == rest.sorted(), "ids stay increasing")
        #expect(Set(newest.values).isSubset(of: rest), "every session's newest state is written")
        let coalesced = machine.takeCoalesced()
        #expect(coalesced > 0)
        #expect(rest.count + coalesced == 20, "every frame written or conflated, none lost otherwise")
    }

    @Test func aChannelThatTakesNothingForTheStallTimeoutIsCutOneThatTakesALittleIsNot() {
        let limits = StreamStateMachine.Limits(maximumFrames: 100, maximumBytes: 10_000, stallTimeout: .seconds(10))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        // A slow reader: its channel takes something every 9 s, and it is never cut.
        var slow = Self.live(limits)
        var id: Int64 = 0
        for second in stride(from: Int64(0), to: 60, by: 1) {
            id += 1
            let now = start + .seconds(second)
            if second % 9 == 0 { _ = slow.writabilityChanged(true, now: now) }
            _ = slow.writabilityChanged(false, now: now)
            if case .abort = slow.push(Self.event(id, session: "a"), writable: false, now: now) {
                Issue.record("a reader that keeps taking something is not cut (second \(second))")
                return
            }
        }
        #expect(slow.state == .live)
        // A stuck reader: its channel never takes more; its backlog stays small (one session),
        // but 10 s after it stopped, the next frame cuts it.
        var stuck = Self.live(limits)
        _ = stuck.writabilityChanged(false, now: start)
        for second in Int64(0)..<10 {
            guard case .none = stuck.push(Self.event(second + 1, session: "a"), writable: false, now: start + .seconds(second)) else {
                Issue.record("within the stall timeout")
                return
            }
        }
        guard case .abort(.stalled) = stuck.push(Self.event(11, session: "a"), writable: false, now: start + .seconds(10)) else {
            Issue.record("cut once it took nothing for 10 s")
            return
        }
        #expect(stuck.state == .closed)
        #expect(stuck.waiting.frames == 0)
    }

    @Test func aDispatchToAWritableStreamWithNothingWaitingIsWrittenAtOnceAsOneWrite() {
        var machine = Self.live(.init(maximumFrames: 100, maximumBytes: 100_000))
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let batch = (Int64(1)...3).map { Self.event($0) }
        guard case .write(let frames) = machine.receive(batch, writable: true, now: now) else {
            Issue.record("written at once")
            return
        }
        #expect(Self.ids(frames) == [1, 2, 3])
        #expect(!machine.hasWaiting)
        // Ids at or below the last written are dropped (a subscriber of several of an event's topics).
        guard case .write(let next) = machine.receive([Self.event(3), Self.event(4), Self.event(4)], writable: true, now: now) else {
            Issue.record("the new one is written")
            return
        }
        #expect(Self.ids(next) == [4])
        guard case .none = machine.receive([Self.event(2), Self.event(4)], writable: true, now: now) else {
            Issue.record("nothing new: nothing to write")
            return
        }
    }

    @Test func aDispatchBehindABacklogOrLargerThanAChunkGoesChunkByChunk() {
        let limits = StreamStateMachine.Limits(maximumFrames: 1000, maximumBytes: 1 << 20, writeChunkBytes: 300)
        var machine = Self.live(limits)
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        // A chunk of 300 bytes holds two of these 120-byte events.
        let batch = (Int64(1)...5).map { Self.event($0, size: 120) }
        guard case .write(let first) = machine.receive(batch, writable: true, now: now) else {
            Issue.record("the first chunk is written")
            return
        }
        #expect(Self.ids(first) == [1, 2])
        // Frames behind what still waits go after it, in order.
        guard case .write(let second) = machine.receive([Self.event(6, size: 120)], writable: true, now: now) else {
            Issue.record("the next chunk")
            return
        }
        #expect(Self.ids(second) == [3, 4])
        var rest: [Int64?] = []
        while case .write(let frames) = machine.writabilityChanged(true, now: now) { rest += Self.ids(frames) }
        #expect(rest == [5, 6])
    }

    @Test func aDispatchToAChannelThatTakesNothingWaitsAndAStalledChannelCutsTheStream() {
        let limits = StreamStateMachine.Limits(maximumFrames: 100, maximumBytes: 10_000, stallTimeout: .seconds(5))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var machine = Self.live(limits)
        guard case .none = machine.receive((Int64(1)...3).map { Self.event($0) }, writable: false, now: start) else {
            Issue.record("frames wait for a channel that takes nothing")
            return
        }
        #expect(machine.hasWaiting)
        guard case .write(let frames) = machine.writabilityChanged(true, now: start) else {
            Issue.record("drained")
            return
        }
        #expect(Self.ids(frames) == [1, 2, 3])
        // The channel stops taking anything: frames still wait, until 5 s have gone by.
        _ = machine.writabilityChanged(false, now: start)
        guard case .none = machine.receive([Self.event(4)], writable: false, now: start + .seconds(4)) else {
            Issue.record("within the stall timeout")
            return
        }
        guard case .abort(.stalled) = machine.receive([Self.event(5)], writable: false, now: start + .seconds(5)) else {
            Issue.record("stalled")
            return
        }
        #expect(machine.state == .closed)
    }
}
