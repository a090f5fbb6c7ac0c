import PostgresNIO

/// A column a statement was expected to select and did not.
public struct MissingColumn: Error, CustomStringConvertible {
    public let name: String
    public var description: String { "the row has no column \(name)" }
}

extension PostgresRandomAccessRow {
    /// The cell of column `name`: an error when there is none (PostgresNIO's own subscript stops the process).
    public func column(_ name: String) throws -> PostgresCell {
        guard contains(name) else { throw MissingColumn(name: name) }
        return self[name]
    }
}
