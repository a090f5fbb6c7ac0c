import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Shared
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the subscribers report into. Counters shared by every thread are atomics; the
/// per-event tallies and the latency histogram live in one `LoopTally` per event-loop
/// thread, touched only on that thread, so recording a delivery takes no lock.
final class DeliveryStats: Sendable {
    private let measuring = Atomic<Bool>(false)
    private let opened = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let ended = Atomic<Int>(0)
    private let tallies: [ObjectIdentifier: LoopTally]
    private let loops: [any EventLoop]
    /// The tallies of readers that are not event loops (`RawHTTP1Readers`' threads).
    private let rawTallies = Mutex<[TallyBox]>([])
    private let keepArrivals: Bool
    private let keepDeliveries: Bool

    /// `keepArrivals`: also note when each event id first arrived (for latencies measured
    /// against the database afterwards, as the waitlist case does). `keepDeliveries`: note
    /// every measured delivery's event id and arrival (for the latency from the log's append).
    init(group: any EventLoopGroup, keepArrivals: Bool = false, keepDeliveries: Bool = false) {
        loops = Array(group.makeIterator())
        self.keepArrivals = keepArrivals
        self.keepDeliveries = keepDeliveries
        tallies = Dictionary(
            uniqueKeysWithValues: loops.map {
                (ObjectIdentifier($0), LoopTally(keepArrivals: keepArrivals, keepDeliveries: keepDeliveries))
            })
    }

    var isMeasuring: Bool { measuring.load(ordering: .relaxed) }
    var openStreams: Int { opened.load(ordering: .relaxed) }
    var failedStreams: Int { failed.load(ordering: .relaxed) }
    var endedStreams: Int { ended.load(ordering: .relaxed) }

    func streamOpened() { opened.add(1, ordering: .relaxed) }
    func streamFailed() { failed.add(1, ordering: .relaxed) }
    func streamEnded() { ended.add(1, ordering: .relaxed) }

    /// The tally of `loop`: use it only on that loop.
    func tally(for loop: any EventLoop) -> LoopTally { tallies[ObjectIdentifier(loop)]! }

    func setMeasuring(_ on: Bool) { measuring.store(on, ordering: .relaxed) }

    /// A tally for a reader thread of its own, used under the box's lock.
    func addRawTally() -> TallyBox {
        let box = TallyBox(LoopTally(keepArrivals: keepArrivals, keepDeliveries: keepDeliveries))
        rawTallies.withLock { $0.append(box) }
        return box
    }

    /// Clears every tally (on its own thread).
    func reset() async throws {
        for loop in loops {
            let tally = self.tally(for: loop)
            try await loop.submit { tally.reset() }.get()
        }
        for box in rawTallies.withLock({ $0 }) { box.lock.withLock { box.tally.reset() } }
    }

    /// Every measured delivery noted with `keepDeliveries`, taken out of the tallies.
    func takeDeliveries() async throws -> [LoopTally.Delivery] {
        var all: [LoopTally.Delivery] = []
        for loop in loops {
            let tally = self.tally(for: loop)
            all += try await loop.submit { tally.takeDeliveries() }.get()
        }
        for box in rawTallies.withLock({ $0 }) { all += box.lock.withLock { box.tally.takeDeliveries() } }
        return all
    }

    /// Every tally merged (each read on its own thread).
    func merged() async throws -> LoopTally.Snapshot {
        var total = LoopTally.Snapshot()
        for loop in loops {
            let tally = self.tally(for: loop)
            total.merge(try await loop.submit { tally.snapshot() }.get())
        }
        for box in rawTallies.withLock({ $0 }) { total.merge(box.lock.withLock { box.tally.snapshot() }) }
        return total
    }
}

/// The tally of a reader thread that is not an event loop: the thread holds the lock while it
/// reads a batch of ready sockets, the summaries take it to read.
final class TallyBox: Sendable {
    let lock = NIOLock()
    let tally: LoopTally

    init(_ tally: LoopTally) { self.tally = tally }
}

/// Deliveries seen on one event-loop thread. Not thread-safe by design: one thread only.
final class LoopTally: @unchecked Sendable {
    struct Snapshot: Sendable {
        var deliveries = 0
        var measuredDeliveries = 0
        var outOfOrder = 0
        var untimed = 0
        var perEvent: [EventKey: Int] = [:]
        var histogram = LoopTally.emptyHistogram()
        /// Numeric event id → wall-clock microseconds of its first arrival (with `keepArrivals`).
        var arrivals: [Int: Int64] = [:]

        mutating func merge(_ other: Snapshot) {
            deliveries += other.deliveries
            measuredDeliveries += other.measuredDeliveries
            outOfOrder += other.outOfOrder
            untimed += other.untimed
            perEvent.merge(other.perEvent, uniquingKeysWith: +)
            histogram.add(other.histogram)
            arrivals.merge(other.arrivals) { min($0, $1) }
        }
    }

    /// Vacancy's ids are numbers; other servers' (Nchan's "time:tag") are kept as text.
    enum EventKey: Hashable, Sendable {
        case number(Int)
        case text(String)
    }

    static func emptyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    }

    /// One measured delivery: the event's id and when it arrived (wall-clock microseconds).
    struct Delivery: Sendable {
        var id: Int
        var arrivedMicros: Int64
    }

    private var state = Snapshot()
    private let keepArrivals: Bool
    private let keepDeliveries: Bool
    /// Kept out of `Snapshot`: a snapshot taken while deliveries arrive would make the next
    /// append copy the whole array on the reading thread.
    private var deliveries: [Delivery] = []

    init(keepArrivals: Bool = false, keepDeliveries: Bool = false) {
        self.keepArrivals = keepArrivals
        self.keepDeliveries = keepDeliveries
    }

    func record(_ key: EventKey, inOrder: Bool, latencyMicros: Int64?, measuring: Bool) {
        if keepArrivals, case .number(let id) = key, state.arrivals[id] == nil { state.arrivals[id] = wallClockMicros() }
        state.deliveries += 1
        if !inOrder { state.outOfOrder += 1 }
        state.perEvent[key, default: 0] += 1
        guard measuring else { return }
        state.measuredDeliveries += 1
        if keepDeliveries, case .number(let id) = key { deliveries.append(Delivery(id: id, arrivedMicros: wallClockMicros())) }
        if let latencyMicros {
            _ = state.histogram.record(UInt64(max(1, latencyMicros)))
        } else {
            state.untimed += 1
        }
    }

    func reset() {
        state = Snapshot()
        deliveries = []
    }
    func snapshot() -> Snapshot { state }
    func takeDeliveries() -> [Delivery] {
        defer { deliveries = [] }
        return deliveries
    }
}

/// Microseconds since the Unix epoch by the wall clock (the clock PostgreSQL stamps with).
@inline(__always) func wallClockMicros() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
}

/// Reads one SSE stream's body bytes in place: splits events on blank lines, takes `id:`
/// and the timestamp after `"<field>":` in `data:`, and reports each event once. Not
/// Shared's `ServerSentEventParser`, which builds strings for every field: at 200,000
/// deliveries a second those allocations made the generator the bottleneck.
struct ServerSentEventScanner {
    private var pending: ByteBuffer?
    private var lastID = -1
    /// The last id seen that is not a number (another server's, as Nchan's "time:tag").
    private var lastTextID: String?

    /// What a reconnect sends as `Last-Event-ID`: the last id seen, if any.
    var lastEventID: String? { lastTextID ?? (lastID >= 0 ? String(lastID) : nil) }

    /// A reconnect starts afresh on the wire (a partial event of the old connection is gone).
    mutating func connectionEnded() { pending = nil }
    private let needle: [UInt8]

    init(timestampField: String) {
        needle = Array("\"\(timestampField)\":".utf8)
    }

    /// Scans body bytes in place; only an event left unfinished at their end is copied.
    mutating func consume(_ raw: UnsafeRawBufferPointer, tally: LoopTally, measuring: Bool) {
        guard pending == nil else {
            consume(ByteBuffer(bytes: raw), tally: tally, measuring: measuring)
            return
        }
        var start = 0
        while start < raw.count, let end = Self.blankLine(in: UnsafeRawBufferPointer(rebasing: raw[start...])) {
            scan(UnsafeRawBufferPointer(rebasing: raw[start..<start + end]), tally: tally, measuring: measuring)
            start += end
        }
        if start < raw.count { pending = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: raw[start...])) }
    }

    mutating func consume(_ bytes: ByteBuffer, tally: LoopTally, measuring: Bool) {
        var buffer: ByteBuffer
        if var earlier = pending {
            var bytes = bytes
            earlier.writeBuffer(&bytes)
            buffer = earlier
        } else {
            buffer = bytes
        }
        pending = nil
        while buffer.readableBytes > 0 {
            let consumed = buffer.withUnsafeReadableBytes { raw -> Int in
                guard let end = Self.blankLine(in: raw) else { return 0 }
                scan(UnsafeRawBufferPointer(rebasing: raw[0..<end]), tally: tally, measuring: measuring)
                return end
            }
            guard consumed > 0 else { break }
            buffer.moveReaderIndex(forwardBy: consumed)
        }
        if buffer.readableBytes > 0 { pending = buffer }
    }

    /// The length up to and including the first blank line (`\n\n`), if there is one.
    private static func blankLine(in raw: UnsafeRawBufferPointer) -> Int? {
        guard raw.count >= 2 else { return nil }
        for index in 1..<raw.count where raw[index] == 10 && raw[index - 1] == 10 { return index + 1 }
        return nil
    }

    private mutating func scan(_ block: UnsafeRawBufferPointer, tally: LoopTally, measuring: Bool) {
        var key: LoopTally.EventKey?
        var numeric: Int?
        var hasData = false
        var latency: Int64?
        var lineStart = 0
        for index in 0..<block.count where block[index] == 10 {
            let line = UnsafeRawBufferPointer(rebasing: block[lineStart..<index])
            lineStart = index + 1
            if line.starts(with: "id:".utf8) {
                let text = line.dropFirst(3).drop { $0 == 32 }
                if !text.isEmpty, text.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                    let value = text.reduce(0) { $0 * 10 + Int($1 - 48) }
                    numeric = value
                    key = .number(value)
                } else {
                    let id = String(decoding: text, as: UTF8.self)
                    key = .text(id)
                    lastTextID = id
                }
            } else if line.starts(with: "data:".utf8) {
                hasData = true
                if measuring, let stamp = timestamp(in: line) { latency = wallClockMicros() - stamp }
            }
        }
        guard let key, hasData else { return }  // a comment, a ping or a bare retry
        var inOrder = true
        if let numeric {
            inOrder = numeric > lastID
            lastID = max(lastID, numeric)
        }
        tally.record(key, inOrder: inOrder, latencyMicros: latency, measuring: measuring)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` after the needle, as microseconds since the epoch.
    private func timestamp(in line: UnsafeRawBufferPointer) -> Int64? {
        // `"field":"…"`, with or without a space after the colon (jsonb prints one).
        guard var start = find(needle, in: line) else { return nil }
        while start < line.count, line[start] == UInt8(ascii: " ") { start += 1 }
        guard start < line.count, line[start] == UInt8(ascii: "\"") else { return nil }
        let text = UnsafeRawBufferPointer(rebasing: line[(start + 1)..<min(line.count, start + 33)])
        func number(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= text.count else { return nil }
            var value: Int64 = 0
            for byte in text[from..<from + count] {
                guard byte >= 48 && byte <= 57 else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            return value
        }
        guard let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2)
        else { return nil }
        var micros: Int64 = 0
        if text.count > 19, text[19] == UInt8(ascii: ".") {
            var digits = 0
            var index = 20
            while index < text.count, digits < 6, text[index] >= 48 && text[index] <= 57 {
                micros = micros * 10 + Int64(text[index] - 48)
                digits += 1
                index += 1
            }
            while digits < 6 {
                micros *= 10
                digits += 1
            }
        }
        let days = Int64(CivilDate.days(year: Int(year), month: Int(month), day: Int(day)))
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000) + micros
    }
}

/// Where `needle` ends in `haystack`, if it occurs.
private func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Int? {
    guard let first = needle.first, haystack.count >= needle.count else { return nil }
    var index = 0
    while index <= haystack.count - needle.count {
        if haystack[index] == first {
            var matched = 1
            while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
            if matched == needle.count { return index + needle.count }
        }
        index += 1
    }
    return nil
}

/// One subscriber on an HTTP/1.1 connection, or one HTTP/2 stream (behind the HTTP/2 →
/// HTTP/1 codec): sends the GET when active, then scans the body as it arrives.
final class SSEStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead
    private let stats: DeliveryStats
    /// The subscriber this stream serves; it outlives the connection, so a reconnect goes on
    /// where the last one stopped.
    let slot: SubscriberSlot
    private var tally: LoopTally?
    private var counted = false

    init(head: HTTPRequestHead, stats: DeliveryStats, slot: SubscriberSlot) {
        var head = head
        if let last = slot.scanner.lastEventID { head.headers.replaceOrAdd(name: "Last-Event-ID", value: last) }
        self.head = head
        self.stats = stats
        self.slot = slot
    }

    private var requested = false

    func channelActive(context: ChannelHandlerContext) {
        request(context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // An HTTP/2 stream channel may be active before its handlers are added.
        if context.channel.isActive { request(context) }
    }

    private func request(_ context: ChannelHandlerContext) {
        guard !requested else { return }
        requested = true
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response):
            if response.status == .ok {
                counted = true
                slot.answered = true
                stats.streamOpened()
            } else {
                stats.streamFailed()
                context.close(promise: nil)
            }
        case .body(let bytes):
            let tally = self.tally ?? stats.tally(for: context.eventLoop)
            self.tally = tally
            slot.scanner.consume(bytes, tally: tally, measuring: stats.isMeasuring)
        case .end:
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted { stats.streamEnded() }
        slot.answered = false
        slot.scanner.connectionEnded()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !counted { stats.streamFailed() }
        context.close(promise: nil)
    }
}

/// One subscriber's reading of its stream, across reconnects: what it has seen and the id it
/// resumes after. Used by one connection at a time, on that connection's event loop.
final class SubscriberSlot: @unchecked Sendable {
    let index: Int
    var scanner: ServerSentEventScanner
    /// Answered with 200 on its current connection.
    var answered = false

    init(index: Int, timestampField: String) {
        self.index = index
        scanner = ServerSentEventScanner(timestampField: timestampField)
    }
}

/// Opens subscribers against any SSE URL: one TCP connection each over HTTP/1.1, or many
/// streams per TLS connection over HTTP/2.
final class SSESubscribers: Sendable {
    let group: MultiThreadedEventLoopGroup
    private let channels: Mutex<[any Channel]> = Mutex([])
    /// Every subscriber opened, by index (kept for `reconnectAll`).
    private let slots: Mutex<[SubscriberSlot]> = Mutex([])

    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    struct Target: Sendable {
        var host: String
        var port: Int
        var requestURI: String
        var tls: Bool
    }

    static func target(_ url: String) throws -> Target {
        guard let components = URLComponents(string: url), let host = components.host,
            let scheme = components.scheme, scheme == "http" || scheme == "https"
        else { throw SSELoadError("not an http(s) URL: \(url)") }
        let query = components.percentEncodedQuery.map { "?" + $0 } ?? ""
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return Target(
            host: host, port: components.port ?? (scheme == "https" ? 443 : 80), requestURI: path + query, tls: scheme == "https")
    }

    static func requestHead(_ target: Target, uri: String) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
        head.headers.add(name: "Host", value: "\(target.host):\(target.port)")
        head.headers.add(name: "Accept", value: "text/event-stream")
        head.headers.add(name: "Cache-Control", value: "no-cache")
        return head
    }

    /// `count` HTTP/1.1 subscribers, opened `batch` at a time; subscriber `i` asks for
    /// `uris[i % uris.count]` (default: the target's own).
    func openHTTP1(
        _ target: Target, uris: [String] = [], count: Int, stats: DeliveryStats, timestampField: String, progress: (Int) -> Void
    ) async throws {
        let uris = uris.isEmpty ? [target.requestURI] : uris
        let sslContext = target.tls ? try Self.sslContext(alpn: ["http/1.1"]) : nil
        var opened = 0
        while opened < count {
            let batch = min(200, count - opened)
            try await withThrowingTaskGroup(of: (any Channel).self) { tasks in
                for index in opened..<opened + batch {
                    let head = Self.requestHead(target, uri: uris[index % uris.count])
                    tasks.addTask {
                        try await ClientBootstrap(group: self.group)
                            .channelOption(.socketOption(.tcp_nodelay), value: 1)
                            .channelInitializer { channel in
                                channel.eventLoop.makeCompletedFuture {
                                    if let sslContext {
                                        try channel.pipeline.syncOperations.addHandler(
                                            try NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                                    }
                                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                                    try channel.pipeline.syncOperations.addHandler(
                                        SSEStreamHandler(
                                            head: head, stats: stats, slot: SubscriberSlot(index: index, timestampField: timestampField)))
                                }
                            }
                            .connect(host: target.host, port: target.port).get()
                    }
                }
                for try await channel in tasks { channels.withLock { $0.append(channel) } }
            }
            opened += batch
            progress(opened)
        }
    }

    /// `count` HTTP/2 subscribers over TLS, `streamsPerConnection` streams on each connection,
    /// up to 16 connections opening at once.
    func openHTTP2(
        _ target: Target, uris: [String] = [], count: Int, streamsPerConnection: Int, stats: DeliveryStats, timestampField: String,
        progress: (Int) -> Void
    ) async throws {
        let slots = (0..<count).map { SubscriberSlot(index: $0, timestampField: timestampField) }
        self.slots.withLock { $0 = slots }
        try await openHTTP2(target, uris: uris, slots: slots, streamsPerConnection: streamsPerConnection, stats: stats, progress: progress)
    }

    private func openHTTP2(
        _ target: Target, uris: [String], slots: [SubscriberSlot], streamsPerConnection: Int, stats: DeliveryStats,
        progress: (Int) -> Void
    ) async throws {
        guard target.tls else { throw SSELoadError("HTTP/2 subscribers need an https:// URL (ALPN h2)") }
        let sslContext = try Self.sslContext(alpn: ["h2"])
        let uris = uris.isEmpty ? [target.requestURI] : uris
        let connections = stride(from: 0, to: slots.count, by: streamsPerConnection).map {
            Array(slots[$0..<min(slots.count, $0 + streamsPerConnection)])
        }
        var opened = 0
        for wave in stride(from: 0, to: connections.count, by: 16) {
            try await withThrowingTaskGroup(of: Int.self) { tasks in
                for streams in connections[wave..<min(connections.count, wave + 16)] {
                    tasks.addTask {
                        try await self.openConnection(target, uris: uris, streams: streams, sslContext: sslContext, stats: stats)
                        return streams.count
                    }
                }
                for try await count in tasks {
                    let before = opened
                    opened += count
                    if opened / 1000 != before / 1000 || opened == slots.count { progress(opened) }
                }
            }
        }
    }

    private func openConnection(
        _ target: Target, uris: [String], streams: [SubscriberSlot], sslContext: NIOSSLContext, stats: DeliveryStats
    ) async throws {
        // HTTP/2 is set up in the initializer, before anything is read: the server's SETTINGS
        // may follow the TLS handshake at once, and bytes read before the HTTP/2 handler is in
        // place would be lost with them (the connection would never answer a stream).
        let connection = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                    _ = try pipeline.configureHTTP2Pipeline(mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()) {
                        $0.eventLoop.makeSucceededVoidFuture()
                    }
                }
            }
            .connect(host: target.host, port: target.port).get()
        let multiplexer = try await connection.eventLoop.submit {
            try connection.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
        }.get()
        channels.withLock { $0.append(connection) }
        for slot in streams {
            let head = Self.requestHead(target, uri: uris[slot.index % uris.count])
            let promise = connection.eventLoop.makePromise(of: (any Channel).self)
            multiplexer.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                    try stream.pipeline.syncOperations.addHandler(SSEStreamHandler(head: head, stats: stats, slot: slot))
                }
            }
            _ = try await promise.futureResult.get()
        }
    }

    /// Drops every HTTP/2 connection at once, then opens every subscriber again, each with
    /// `Last-Event-ID` set to the last id it read. Returns when all are reopened (not yet
    /// answered: watch `stats.openStreams`).
    func reconnectAllHTTP2(_ target: Target, uris: [String] = [], streamsPerConnection: Int, stats: DeliveryStats) async throws {
        let open = channels.withLock { channels in
            defer { channels = [] }
            return channels
        }
        let closes = open.map { $0.close() }
        for close in closes { try? await close.get() }
        let slots = self.slots.withLock { $0 }
        try await openHTTP2(target, uris: uris, slots: slots, streamsPerConnection: streamsPerConnection, stats: stats) { _ in }
    }

    static func sslContext(alpn: [String]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.applicationProtocols = alpn
        return try NIOSSLContext(configuration: configuration)
    }

    /// Subscribers not answered yet, by the index of the first subscriber of their HTTP/2 connection.
    func unanswered(streamsPerConnection: Int) -> [Int: Int] {
        let slots = self.slots.withLock { $0 }
        var missing: [Int: Int] = [:]
        for slot in slots where !slot.answered { missing[slot.index / streamsPerConnection * streamsPerConnection, default: 0] += 1 }
        return missing
    }

    func close() async {
        let open = channels.withLock { $0 }
        for channel in open { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

struct SSELoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Resident memory of several processes together (KiB), or nil if none is given or readable.
func residentKiB(pids: [Int32]) -> Int? {
    let sizes = pids.compactMap(residentKiB(pid:))
    return sizes.isEmpty || sizes.count != pids.count ? nil : sizes.reduce(0, +)
}

/// Resident memory of a process, from /proc (KiB).
func residentKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
    }
    return nil
}

/// CPU time (user and system) the processes have used so far, from /proc (in clock ticks,
/// 100 a second); nil when one of them cannot be read.
func processCPUTicks(pids: [Int32]) -> Int? {
    var total = 0
    for pid in pids {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        total += user + system
    }
    return total
}

/// The machine's CPU time so far, from /proc/stat (jiffies): all of it, and what the
/// hypervisor gave to other guests ("steal"). A run with much steal measured a slower machine.
struct CPUTimes {
    var total: Int
    var steal: Int
    /// Neither idle nor waiting for I/O (nor stolen).
    var busy: Int

    static func now() -> CPUTimes? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        // cpu user nice system idle iowait irq softirq steal guest guest_nice
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { Int($0) }
        guard fields.count == 8 else { return nil }
        return CPUTimes(total: fields.reduce(0, +), steal: fields[7], busy: fields.reduce(0, +) - fields[3] - fields[4] - fields[7])
    }

    /// The share of the time since `earlier` that was stolen, in percent.
    func stealPercent(since earlier: CPUTimes) -> Double {
        let total = self.total - earlier.total
        return total > 0 ? Double(steal - earlier.steal) * 100 / Double(total) : 0
    }
}
