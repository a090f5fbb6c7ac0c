import Logging
import PostgresNIO

extension PostgresConnection {
    /// The first column of the first row of `query` as an Int, 0 when there is no row or it
    /// is NULL: how the tests, the resilience scenarios and the benchmarks read a count.
    public func scalar(_ query: PostgresQuery, logger: Logger = TestEnvironment.logger) async throws -> Int {
        guard let row = try await self.query(query, logger: logger).collect().first else { return 0 }
        return try row.decode(Int?.self) ?? 0
    }
}
