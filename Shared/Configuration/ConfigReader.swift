import Configuration
import Foundation
import Logging

/// Reads configuration from environment variables, remembering every value it handed out
/// so that a service can print its whole effective configuration at start-up. The values
/// come through swift-configuration's `EnvironmentVariablesProvider` (secret reads marked
/// as such); this type adds what Vacancy promises on top: every value validated, a bad one
/// a clear `InvalidValue`, the effective set logged with secrets masked.
public struct ConfigReader: Sendable {
    /// One configuration value as it will be printed.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let value: String
        public let isSecret: Bool
        public let isDefault: Bool
        /// The value as it may appear in a log: secrets keep only their length.
        public let printable: String
    }

    /// A value that could not be read; start-up stops with this message.
    public struct InvalidValue: Error, CustomStringConvertible {
        public let name: String
        public let value: String
        public let expected: String
        public var description: String { "\(name)=\"\(value)\" is invalid: expected \(expected)" }

        public init(name: String, value: String, expected: String) {
            self.name = name
            self.value = value
            self.expected = expected
        }
    }

    private let source: Configuration.ConfigReader
    public private(set) var entries: [Entry] = []

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        source = Configuration.ConfigReader(provider: EnvironmentVariablesProvider(environmentVariables: environment))
    }

    public mutating func string(_ name: String, default defaultValue: String, secret: Bool = false) -> String {
        let raw = source.string(forKey: ConfigKey([name]), isSecret: secret).flatMap { $0.isEmpty ? nil : $0 }
        let value = raw ?? defaultValue
        let printable = secret ? (value.isEmpty ? "" : "****(\(value.count) chars)") : value
        entries.append(Entry(name: name, value: value, isSecret: secret, isDefault: raw == nil, printable: printable))
        return value
    }

    /// Reads a database URL; the printed form has its password masked.
    public mutating func databaseURL(_ name: String, default defaultValue: String) throws -> DatabaseURL {
        let raw = source.string(forKey: ConfigKey([name]), isSecret: true).flatMap { $0.isEmpty ? nil : $0 }
        let url = try DatabaseURL(parsing: raw ?? defaultValue)
        entries.append(Entry(name: name, value: url.description, isSecret: false, isDefault: raw == nil, printable: url.description))
        return url
    }

    public mutating func int(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws -> Int {
        let text = string(name, default: String(defaultValue))
        guard let value = Int(text), range.contains(value) else {
            throw InvalidValue(name: name, value: text, expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }

    public mutating func bool(_ name: String, default defaultValue: Bool) throws -> Bool {
        let text = string(name, default: defaultValue ? "true" : "false").lowercased()
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw InvalidValue(name: name, value: text, expected: "true or false")
        }
    }

    /// An IANA time zone name (`Europe/London`, `UTC`), one of `VenueTime.names`.
    public mutating func timeZone(_ name: String, default defaultValue: String) throws -> String {
        let text = string(name, default: defaultValue)
        guard VenueTime.zone(named: text) != nil else {
            throw InvalidValue(name: name, value: text, expected: "an IANA time zone name such as Europe/London or UTC")
        }
        return text
    }

    public mutating func milliseconds(_ name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws -> Duration {
        .milliseconds(try int(name, default: defaultValue, in: range))
    }

    public mutating func logLevel(_ name: String, default defaultValue: Logger.Level) throws -> Logger.Level {
        let text = string(name, default: defaultValue.rawValue).lowercased()
        guard let level = Logger.Level(rawValue: text) else {
            throw InvalidValue(name: name, value: text, expected: Logger.Level.allCases.map(\.rawValue).joined(separator: "|"))
        }
        return level
    }

    /// Logs every value read so far, one line each, secrets masked.
    public func log(to logger: Logger) {
        for entry in entries {
            logger.info(
                "config",
                metadata: [
                    "name": .string(entry.name),
                    "value": .string(entry.printable),
                    "source": .string(entry.isDefault ? "default" : "environment"),
                ]
            )
        }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
