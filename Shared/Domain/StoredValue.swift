/// A value read from the database that this build has no case for.
public struct UnknownStoredValue: Error, CustomStringConvertible {
    public let column: String
    public let value: String
    public var description: String { "\(column) holds \"\(value)\", which this build does not know" }
}

extension RawRepresentable where RawValue == String {
    /// The case stored as `text` in `column`: an unknown one is an error, never taken for another case.
    public static func stored(_ text: String, column: String) throws -> Self {
        guard let value = Self(rawValue: text) else { throw UnknownStoredValue(column: column, value: text) }
        return value
    }
}
