import Foundation

/// Parses path and query values, answering 400 naming the parameter when malformed.
public enum Parameter {
    public static func uuid(_ text: String?, name: String) throws -> UUID {
        guard let text, let id = UUID(uuidString: text) else {
            throw Problem.badParameter(name, "must be a UUID")
        }
        return id
    }

    public static func optionalUUID(_ text: String?, name: String) throws -> UUID? {
        guard let text else { return nil }
        return try uuid(text, name: name)
    }

    public static func day(_ text: String?, name: String) throws -> CalendarDay? {
        guard let text else { return nil }
        guard let day = CalendarDay(text) else { throw Problem.badParameter(name, "must be a date YYYY-MM-DD") }
        return day
    }

    public static func int(_ text: String?, name: String, default defaultValue: Int, in range: ClosedRange<Int>) throws -> Int {
        guard let text else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            throw Problem.badParameter(name, "must be an integer between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    /// A course type or location to filter by: 1–100 characters, none a control character
    /// (no stored label has one, and PostgreSQL's text cannot hold a NUL at all).
    public static func label(_ text: String?, name: String) throws -> String? {
        guard let text else { return nil }
        guard (1...100).contains(text.count) else { throw Problem.badParameter(name, "must be 1 to 100 characters") }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw Problem.badParameter(name, "must not contain control characters")
        }
        return text
    }

    public static func enumeration<T: RawRepresentable & CaseIterable & Equatable>(_ text: String?, name: String, as type: T.Type) throws
        -> T?
    where T.RawValue == String {
        try enumeration(text, name: name, among: Array(T.allCases))
    }

    /// One of `allowed`, by raw value; 400 naming the parameter and the allowed values otherwise.
    public static func enumeration<T: RawRepresentable & Equatable>(_ text: String?, name: String, among allowed: [T]) throws -> T?
    where T.RawValue == String {
        guard let text else { return nil }
        guard let value = T(rawValue: text), allowed.contains(value) else {
            throw Problem.badParameter(name, "must be one of " + allowed.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }
}
