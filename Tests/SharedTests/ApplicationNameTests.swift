import PostgresNIO
import Shared
import TestSupport
import Testing

/// Each service's connections say which service they are in `pg_stat_activity`, so what a
/// service costs PostgreSQL can be read there (docs/scaling.md).
@Suite(.timeLimit(.minutes(1))) struct ApplicationNameTests {
    @Test func aServiceNamesItsPooledConnectionsAndItsOwn() async throws {
        var reader = ConfigReader(environment: [:])
        let common = try CommonConfiguration(serviceName: "fanout", portVariable: "VACANCY_FANOUT_PORT", defaultPort: 8083, reader: &reader)
        #expect(common.database.url.applicationName == "vacancy-fanout")
        try await TestDatabase.with(migrate: false) { db in
            var url = db.url
            url.applicationName = common.database.url.applicationName
            try await TestDatabase.withExisting(url: url, migrate: false) { named in
                let pooled = try await named.database.query("SELECT current_setting('application_name')")
                #expect(try pooled.first?.decode(String.self) == "vacancy-fanout")
            }
            // As the LISTEN connections and the calculator's leader connection are made.
            let connection = try await url.connect(logger: TestEnvironment.logger)
            let own = try await connection.query("SELECT current_setting('application_name')", logger: TestEnvironment.logger).collect()
            try? await connection.close()
            #expect(try own.first?.decode(String.self) == "vacancy-fanout")
        }
    }
}
