import FanoutCore
import NIOCore
import Testing

@Suite struct BacklogTests {
    static func frame(_ id: Int64?, _ key: String?) -> StreamFrame {
        StreamFrame(id: id, bytes: ByteBuffer(string: "0123456789"), conflationKey: key)
    }

    @Test func conflationDropsOnlyFramesAReplacementFollows() {
        var backlog = Backlog(conflateAt: 1_000)
        let frames: [StreamFrame] = [
            Self.frame(1, "a"), Self.frame(2, nil), Self.frame(3, "b"), Self.frame(4, "a"), Self.frame(nil, nil), Self.frame(5, "b"),
            Self.frame(6, "c"),
        ]
        var droppedOnAppend = 0
        for frame in frames { droppedOnAppend += backlog.append(frame) }
        #expect(droppedOnAppend == 0, "below the threshold nothing is dropped")
        let dropped = backlog.conflate()
        #expect(dropped == 2)
        let kept = backlog.takeAll()
        #expect(kept.map(\.id) == [2, 4, nil, 5, 6])
        #expect(backlog.bytes == 0 && backlog.isEmpty)
    }

    @Test func passingTheThresholdConflatesAndKeepsTheBytesTrue() {
        var backlog = Backlog(conflateAt: 50)
        var dropped = 0
        for id in Int64(1)...20 { dropped += backlog.append(Self.frame(id, "s\(id % 2)")) }
        #expect(dropped > 0)
        #expect(backlog.bytes == backlog.count * 10)
        let ids = backlog.takeAll().compactMap(\.id)
        #expect(ids.suffix(2) == [19, 20])
        #expect(ids == ids.sorted())
    }

    @Test func passingTheFrameThresholdConflatesToo() {
        var backlog = Backlog(conflateAt: 1 << 20, frames: 10)
        var dropped = 0
        for id in Int64(1)...10 { dropped += backlog.append(Self.frame(id, "one")) }
        #expect(dropped == 9)
        #expect(backlog.takeAll().map(\.id) == [10])
    }

    @Test func framesWithoutAKeyAreAllKept() {
        var backlog = Backlog(conflateAt: 30)
        var dropped = 0
        for id in Int64(1)...100 { dropped += backlog.append(Self.frame(id, nil)) }
        #expect(dropped == 0)
        #expect(backlog.count == 100)
    }

    @Test func takeUpToBytesTakesTheOldestWholeFramesAndAlwaysOne() {
        var backlog = Backlog(conflateAt: 1_000)
        for id in Int64(1)...5 { _ = backlog.append(Self.frame(id, nil)) }
        #expect(backlog.take(upToBytes: 25).map(\.id) == [1, 2], "two 10-byte frames fit in 25")
        #expect(backlog.bytes == 30)
        #expect(backlog.take(upToBytes: 5).map(\.id) == [3], "one frame even past the limit")
        #expect(backlog.take(upToBytes: 1_000).map(\.id) == [4, 5])
        #expect(backlog.isEmpty && backlog.bytes == 0)
    }
}
