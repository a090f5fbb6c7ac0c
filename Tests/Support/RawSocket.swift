import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking TCP socket with a hand-written HTTP/1.1 request, for the clients a normal HTTP
/// client will not play: one that stops reading, one that vanishes with a reset, one that
/// comes from its own loopback address (127.0.0.x) so a per-address rate limit sees it apart.
public final class RawSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public private(set) var descriptor: Int32

    /// Connects to 127.0.0.1:`port`, from `source` (a loopback address) when given, with a
    /// small receive buffer when `receiveBuffer` is set (before connecting, so the window stays small).
    public init(port: Int, source: String? = nil, receiveBuffer: Int32? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket() failed: errno \(errno)") }
        if var size = receiveBuffer {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = Self.address(source, port: 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw failure("bind(\(source))") }
        }
        var remote = Self.address("127.0.0.1", port: port)
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw failure("connect(127.0.0.1:\(port))") }
    }

    deinit { close() }

    private func failure(_ what: String) -> Failure {
        let code = errno
        close()
        return Failure(description: "\(what) failed: errno \(code)")
    }

    private static func address(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        return address
    }

    /// Sends a GET with the given extra header lines.
    public func sendGET(_ path: String, headers: [String] = []) throws {
        let request =
            (["GET \(path) HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"] + headers).joined(separator: "\r\n") + "\r\n\r\n"
        let sent = request.utf8CString.withUnsafeBufferPointer { send(descriptor, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
        guard sent > 0 else { throw Failure(description: "send failed: errno \(errno)") }
    }

    /// Reads until the response head is complete; returns its status code (0 if the
    /// connection ended first). The rest of what was read is left unparsed.
    public func readStatus() -> Int {
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !head.containsHeadEnd {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return 0 }
            head.append(contentsOf: chunk[0..<count])
        }
        let line = String(decoding: head.prefix { $0 != UInt8(ascii: "\r") }, as: UTF8.self)
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    }

    /// Whether the peer has closed the connection (a FIN or a reset), without reading: data
    /// still waiting stays unread, so a stuck client stays stuck while it is asked.
    public var peerClosed: Bool {
        // POLLRDHUP (Linux): the peer closed its side, even while unread data waits. Glibc
        // declares it only under _GNU_SOURCE, which Swift's import does not set.
        let peerHungUp: Int16 = 0x2000
        let closed = peerHungUp | Int16(POLLHUP) | Int16(POLLERR)
        var entry = pollfd(fd: descriptor, events: closed, revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return false }
        return entry.revents & closed != 0
    }

    /// Reads what has arrived, at most `count` bytes, waiting up to the receive timeout (5 s);
    /// empty once the connection ended (or nothing came in time).
    public func read(upTo count: Int) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: count)
        let read = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        return read > 0 ? Array(chunk[0..<read]) : []
    }

    /// Closes with a TCP reset instead of a FIN: the client vanished.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    public func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }
}

extension [UInt8] {
    fileprivate var containsHeadEnd: Bool {
        guard count >= 4 else { return false }
        for index in 0...(count - 4) where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return true
        }
        return false
    }
}

extension RawSocket {
    /// A client that sends a GET with a 4 KiB receive buffer and then never reads: its window
    /// fills and the server's writes stall, as with a phone that went into a tunnel.
    public static func stuck(at baseURL: String, path: String) throws -> RawSocket {
        guard let port = URL(string: baseURL)?.port else { throw Failure(description: "no port in \(baseURL)") }
        let socket = try RawSocket(port: port, receiveBuffer: 4096)
        try socket.sendGET(path)
        return socket
    }
}
