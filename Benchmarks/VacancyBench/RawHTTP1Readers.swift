import CEpoll
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/1.1 SSE subscribers read by plain `epoll` threads: one non-blocking socket per
/// subscriber, the response head checked for 200, the chunked body decoded and scanned in
/// the bytes `read(2)` filled, with no channel pipeline, no HTTP parser objects and no
/// buffer per read.
///
/// The load generator shares the machine with the server it measures. Read through SwiftNIO
/// (`SSESubscribers`), a delivery costs it about 8 µs of CPU, most of a 10,000-subscriber
/// event's time: the bench then measured itself as much as the server. This reader costs
/// what the kernel's `read` does, and a scan.
final class RawHTTP1Readers: @unchecked Sendable {
    // @unchecked: each `Reader` is touched only by its own thread (its tally under its lock);
    // `readers` is fixed at init.
    private let readers: [Reader]

    init(threads: Int, stats: DeliveryStats) {
        readers = (0..<max(1, threads)).map { _ in Reader(tally: stats.addRawTally(), stats: stats) }
        for reader in readers { reader.start() }
    }

    /// Connects `count` subscribers (blocking connects, each request sent at once), subscriber
    /// `i` asking for `uris[i % uris.count]`, spread over the reader threads.
    func open(_ target: SSESubscribers.Target, uris: [String], count: Int, timestampField: String, progress: (Int) -> Void) throws {
        guard !target.tls else { throw SSELoadError("the raw HTTP/1.1 reader speaks plain http:// only (use --reader nio)") }
        let uris = uris.isEmpty ? [target.requestURI] : uris
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(target.port).bigEndian)
        let host = target.host == "localhost" ? "127.0.0.1" : target.host
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw SSELoadError("the raw reader needs an IPv4 address: \(host)") }
        for index in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw SSELoadError("socket: \(String(cString: strerror(errno)))") }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw SSELoadError("connect to \(host):\(target.port): \(reason)")
            }
            // The request SwiftNIO's subscribers send, written out by hand.
            let head = SSESubscribers.requestHead(target, uri: uris[index % uris.count])
            let request = Array(
                ("GET \(head.uri) HTTP/1.1\r\n" + head.headers.map { "\($0.name): \($0.value)\r\n" }.joined() + "\r\n").utf8)
            guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
                Glibc.close(fd)
                throw SSELoadError("sending the request failed: \(String(cString: strerror(errno)))")
            }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            readers[index % readers.count].add(fd: fd, timestampField: timestampField)
            if (index + 1) % 200 == 0 || index + 1 == count { progress(index + 1) }
        }
    }

    /// Stops the threads and closes every connection.
    func close() {
        for reader in readers { reader.stop() }
    }
}

/// One `epoll` thread and its connections.
private final class Reader: @unchecked Sendable {
    // @unchecked: `connections` and `buffer` are the thread's alone; additions come through
    // `adding`, under its lock, and the tally is read by others only under its box's lock.
    private let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
    private let tally: TallyBox
    private let stats: DeliveryStats
    private var connections: [Int32: RawSubscriber] = [:]
    private let adding = NIOLockedValueBox<[RawSubscriber]>([])
    private let stopping = NIOLockedValueBox(false)
    private var thread: Thread?
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)

    init(tally: TallyBox, stats: DeliveryStats) {
        self.tally = tally
        self.stats = stats
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "raw-sse-reader"
        thread.start()
        self.thread = thread
    }

    func add(fd: Int32, timestampField: String) {
        adding.withLockedValue { $0.append(RawSubscriber(fd: fd, timestampField: timestampField)) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        event.data.fd = fd
        // Registered after the subscriber is queued: the thread takes the queue before it
        // looks up a ready descriptor it does not know.
        _ = epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event)
    }

    func stop() { stopping.withLockedValue { $0 = true } }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 512)
        while !stopping.withLockedValue({ $0 }) {
            let ready = epoll_wait(epoll, &events, Int32(events.count), 100)
            guard ready > 0 else { continue }
            for subscriber in adding.withLockedValue({ queue in
                defer { queue = [] }
                return queue
            }) {
                connections[subscriber.fd] = subscriber
            }
            let measuring = stats.isMeasuring
            tally.lock.withLock {
                for index in 0..<Int(ready) {
                    let fd = events[index].data.fd
                    guard let subscriber = connections[fd] else { continue }
                    if !readAll(subscriber, measuring: measuring) {
                        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
                        Glibc.close(fd)
                        connections[fd] = nil
                        subscriber.closed(stats: stats)
                    }
                }
            }
        }
        for fd in connections.keys { Glibc.close(fd) }
        connections = [:]
        Glibc.close(epoll)
        buffer.deallocate()
    }

    /// Reads until the socket has nothing more; false when the connection ended.
    private func readAll(_ subscriber: RawSubscriber, measuring: Bool) -> Bool {
        while true {
            let count = read(subscriber.fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                subscriber.consume(
                    UnsafeRawBufferPointer(rebasing: buffer[0..<count]), tally: tally.tally, stats: stats, measuring: measuring)
                if subscriber.failed { return false }
                if count < buffer.count { return true }
            } else if count == 0 {
                return false
            } else {
                return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
            }
        }
    }
}

/// One subscriber's connection: the response head, then the body, chunked or not.
private final class RawSubscriber {
    let fd: Int32
    private var scanner: ServerSentEventScanner
    private enum Phase {
        case head
        /// Reading a chunk-size line.
        case chunkSize
        /// `remaining` bytes of chunk data, then its CRLF (`trailer` bytes of it still to skip).
        case chunkData(remaining: Int)
        case chunkEnd(trailer: Int)
        /// A body that is not chunked: everything until the close.
        case plain
    }
    private var phase = Phase.head
    /// Bytes of an unfinished head or size line.
    private var partial: [UInt8] = []
    private var answered = false
    private(set) var failed = false

    init(fd: Int32, timestampField: String) {
        self.fd = fd
        scanner = ServerSentEventScanner(timestampField: timestampField)
    }

    func consume(_ bytes: UnsafeRawBufferPointer, tally: LoopTally, stats: DeliveryStats, measuring: Bool) {
        var at = 0
        while at < bytes.count, !failed {
            switch phase {
            case .head:
                // Up to the blank line that ends the head.
                while at < bytes.count {
                    partial.append(bytes[at])
                    at += 1
                    if partial.count >= 4, partial.suffix(4).elementsEqual([13, 10, 13, 10]) { break }
                }
                guard partial.count >= 4, partial.suffix(4).elementsEqual([13, 10, 13, 10]) else { return }
                let head = String(decoding: partial, as: UTF8.self).lowercased()
                partial = []
                guard head.hasPrefix("http/1.1 200") || head.hasPrefix("http/1.0 200") else {
                    failed = true
                    stats.streamFailed()
                    return
                }
                answered = true
                stats.streamOpened()
                phase = head.contains("\r\ntransfer-encoding: chunked") ? .chunkSize : .plain
            case .chunkSize:
                while at < bytes.count, bytes[at] != 10 {
                    partial.append(bytes[at])
                    at += 1
                }
                guard at < bytes.count else { return }
                at += 1  // the LF
                var size = 0
                for byte in partial {
                    guard let digit = Self.hexDigit(byte) else { break }  // CR, or a chunk extension
                    size = size * 16 + digit
                }
                partial = []
                if size == 0 {
                    failed = true  // the body ended: the server closed the stream
                    return
                }
                phase = .chunkData(remaining: size)
            case .chunkData(let remaining):
                let take = min(remaining, bytes.count - at)
                scanner.consume(UnsafeRawBufferPointer(rebasing: bytes[at..<at + take]), tally: tally, measuring: measuring)
                at += take
                phase = take == remaining ? .chunkEnd(trailer: 2) : .chunkData(remaining: remaining - take)
            case .chunkEnd(let trailer):
                let skip = min(trailer, bytes.count - at)
                at += skip
                phase = skip == trailer ? .chunkSize : .chunkEnd(trailer: trailer - skip)
            case .plain:
                scanner.consume(UnsafeRawBufferPointer(rebasing: bytes[at...]), tally: tally, measuring: measuring)
                at = bytes.count
            }
        }
    }

    func closed(stats: DeliveryStats) {
        if answered { stats.streamEnded() } else if !failed { stats.streamFailed() }
    }

    private static func hexDigit(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: Int(byte - 48)
        case 97...102: Int(byte - 87)
        case 65...70: Int(byte - 55)
        default: nil
        }
    }
}
