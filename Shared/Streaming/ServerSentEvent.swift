import NIOCore

/// The `text/event-stream` wire format (WHATWG HTML, "Server-sent events").
public enum ServerSentEvent {
    /// One event: `id:`, `event:` and a single `data:` line (the data must be one line,
    /// as Vacancy's one-line JSON is), then the blank line that dispatches it.
    public static func frame(id: Int64?, event: String, data: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(data.utf8.count + event.utf8.count + 32)
        if let id { buffer.writeString("id: \(id)\n") }
        buffer.writeString("event: \(event)\ndata: ")
        buffer.writeString(data)
        buffer.writeString("\n\n")
        return buffer
    }

    /// A comment line, which clients ignore: keeps proxies and idle timers from closing the stream.
    public static func comment(_ text: String) -> ByteBuffer {
        ByteBuffer(string: ": \(text)\n\n")
    }

    /// The reconnection delay a client should use, in milliseconds.
    public static func retry(milliseconds: Int) -> ByteBuffer {
        ByteBuffer(string: "retry: \(milliseconds)\n")
    }
}

/// An incremental `text/event-stream` parser for clients (tests, the load generator):
/// feed it bytes as they arrive, get the events completed so far.
public struct ServerSentEventParser: Sendable {
    public struct Event: Sendable, Equatable {
        public var id: String?
        public var event: String
        public var data: String
    }

    private var pending: [UInt8] = []
    private var id: String?
    private var event = ""
    private var data: [String] = []
    private var hasField = false
    public private(set) var comments = 0
    /// The last `id:` seen, as EventSource keeps it for `Last-Event-ID`.
    public private(set) var lastEventID: String?

    public init() {}

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        pending.append(contentsOf: bytes)
        var events: [Event] = []
        var lineStart = 0
        var index = 0
        while index < pending.count {
            let byte = pending[index]
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                let line = String(decoding: pending[lineStart..<index], as: UTF8.self)
                if byte == UInt8(ascii: "\r"), index + 1 < pending.count, pending[index + 1] == UInt8(ascii: "\n") { index += 1 }
                if let event = take(line) { events.append(event) }
                lineStart = index + 1
            }
            index += 1
        }
        pending.removeFirst(lineStart)
        return events
    }

    private mutating func take(_ line: String) -> Event? {
        if line.isEmpty {
            defer {
                id = nil
                event = ""
                data = []
                hasField = false
            }
            guard hasField, !data.isEmpty || id != nil else { return nil }
            if let id { lastEventID = id }
            return Event(id: id, event: event.isEmpty ? "message" : event, data: data.joined(separator: "\n"))
        }
        if line.hasPrefix(":") {
            comments += 1
            return nil
        }
        let field: Substring
        var value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            value = line[line.index(after: colon)...]
            if value.hasPrefix(" ") { value = value.dropFirst() }
        } else {
            field = Substring(line)
            value = ""
        }
        switch field {
        case "id":
            id = String(value)
            hasField = true
        case "event":
            event = String(value)
            hasField = true
        case "data":
            data.append(String(value))
            hasField = true
        default:
            break
        }
        return nil
    }
}
