import Foundation
import Logging
import Synchronization

/// The output format of the structured log lines.
public enum LogFormat: String, Sendable {
    /// `ts=… level=info service=bookings msg="…" key=value`
    case logfmt
    /// One JSON object per line.
    case json
}

/// A swift-log handler that writes one structured line per message to standard output.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: LogFormat
    private static let output = Mutex<FileHandle>(FileHandle.standardOutput)

    public init(label: String, format: LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let timestamp = RFC3339.preciseString(from: Date())
        let line: String
        switch format {
        case .logfmt:
            var parts = [
                "ts=\(timestamp)", "level=\(event.level.rawValue)", "logger=\(label)", "msg=\(Self.logfmtQuote(event.message.description))",
            ]
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                parts.append("\(key)=\(Self.logfmtQuote(value.description))")
            }
            line = parts.joined(separator: " ")
        case .json:
            var object: [String: JSONValue] = [
                "ts": .string(timestamp), "level": .string(event.level.rawValue),
                "logger": .string(label), "msg": .string(event.message.description),
            ]
            for (key, value) in merged where object[key] == nil {
                object[key] = .string(value.description)
            }
            line = (try? String(decoding: JSONCoding.encoder.encode(object), as: UTF8.self)) ?? event.message.description
        }
        let data = Data((line + "\n").utf8)
        Self.output.withLock { $0.write(data) }
    }

    static func logfmtQuote(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline }
        guard needsQuotes else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}

extension RFC3339 {
    /// A timestamp with milliseconds, for log lines.
    public static func preciseString(from date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }
}
