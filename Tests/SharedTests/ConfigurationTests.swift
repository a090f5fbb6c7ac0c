import Shared
import Testing

@Suite(.timeLimit(.minutes(2))) struct ConfigurationTests {
    @Test func defaultsApplyAndSecretsAreMasked() throws {
        var reader = ConfigReader(environment: ["VACANCY_API_KEYS": "svc:super-secret-key", "VACANCY_BOOKINGS_PORT": "9001"])
        let common = try CommonConfiguration(
            serviceName: "bookings", portVariable: "VACANCY_BOOKINGS_PORT", defaultPort: 8081, reader: &reader)
        let keys = reader.string("VACANCY_API_KEYS", default: "dev:x", secret: true)
        #expect(common.port == 9001)
        #expect(common.host == "127.0.0.1")
        #expect(common.database.url.port == 54329)
        #expect(keys == "svc:super-secret-key")
        let printed = reader.entries.map(\.printable).joined(separator: " ")
        #expect(!printed.contains("super-secret-key"))
        #expect(reader.entries.first { $0.name == "VACANCY_HOST" }?.isDefault == true)
        #expect(reader.entries.first { $0.name == "VACANCY_BOOKINGS_PORT" }?.isDefault == false)
    }

    @Test func databasePasswordNeverPrinted() throws {
        var reader = ConfigReader(environment: ["VACANCY_DATABASE_URL": "postgres://app:hunter2@db.internal:5433/vacancy?sslmode=require"])
        let url = try reader.databaseURL("VACANCY_DATABASE_URL", default: DatabaseConfiguration.defaultURL)
        #expect(url.host == "db.internal" && url.port == 5433 && url.username == "app" && url.password == "hunter2")
        #expect(url.requireTLS)
        #expect(!reader.entries.contains { $0.printable.contains("hunter2") })
    }

    /// libpq's multi-host syntax: hosts in order, each with its port, and the kind of server wanted.
    @Test func aDatabaseURLMayNameSeveralHosts() throws {
        let url = try DatabaseURL(
            parsing: "postgres://app:p%40ss@db1:5432,db2:5433,[::1]/vacancy?sslmode=disable&target_session_attrs=read-write")
        #expect(url.endpoints.map(\.description) == ["db1:5432", "db2:5433", "[::1]:5432"])
        #expect(url.password == "p@ss" && url.username == "app" && url.database == "vacancy")
        #expect(url.targetSessionAttributes == .readWrite)
        #expect(url.description == "postgres://app:****@db1:5432,db2:5433,[::1]:5432/vacancy?target_session_attrs=read-write")
        #expect(try DatabaseURL(parsing: "postgres://h1,h2/v?target_session_attrs=primary").targetSessionAttributes == .primary)
        #expect(try DatabaseURL(parsing: "postgres://h1/v").targetSessionAttributes == .readWrite, "every service writes")
        #expect(try DatabaseURL(parsing: "postgresql://h1:6000").endpoints == [.init(host: "h1", port: 6000)])
    }

    /// Each malformed list is refused with the setting's name and what was wrong, password masked.
    @Test func aMalformedHostListStopsStartupSayingWhy() {
        let cases = [
            ("postgres://app:secret@db1:5432,,db2/v", "a host in the list is empty"),
            ("postgres://app:secret@db1:99999/v", "'db1:99999' is not host[:port]"),
            ("postgres://app:secret@db1:5432,db 2/v", "'db 2' is not host[:port]"),
            ("postgres://app:secret@/v", "a host in the list is empty"),
            ("postgres://app:secret@db1/v?target_session_attrs=standby", "target_session_attrs 'standby'"),
            ("http://db1/v", "the scheme must be postgres://"),
        ]
        for (text, why) in cases {
            let error = #expect(throws: ConfigReader.InvalidValue.self) { _ = try DatabaseURL(parsing: text) }
            #expect(error?.description.hasPrefix("VACANCY_DATABASE_URL=") == true)
            #expect(error?.description.contains(why) == true, "\(text): \(error?.description ?? "")")
            #expect(error?.description.contains("secret") == false)
        }
    }

    @Test func invalidValuesStopStartup() {
        var reader = ConfigReader(environment: ["VACANCY_BOOKINGS_PORT": "eighty", "VACANCY_LOG_LEVEL": "loud"])
        #expect(throws: ConfigReader.InvalidValue.self) {
            _ = try CommonConfiguration(serviceName: "bookings", portVariable: "VACANCY_BOOKINGS_PORT", defaultPort: 8081, reader: &reader)
        }
        #expect(throws: ConfigReader.InvalidValue.self) { _ = try DatabaseURL(parsing: "mysql://nope") }
    }

    /// `VACANCY_TIME_ZONE`: a zone name or a start-up refusal that names the setting and says what it takes.
    @Test func aTimeZoneSettingIsAZoneName() throws {
        var good = ConfigReader(environment: ["VACANCY_TIME_ZONE": "America/New_York"])
        #expect(try good.timeZone("VACANCY_TIME_ZONE", default: "UTC") == "America/New_York")
        var unset = ConfigReader(environment: [:])
        #expect(try unset.timeZone("VACANCY_TIME_ZONE", default: "UTC") == "UTC")
        var bad = ConfigReader(environment: ["VACANCY_TIME_ZONE": "London"])
        let error = #expect(throws: ConfigReader.InvalidValue.self) { _ = try bad.timeZone("VACANCY_TIME_ZONE", default: "UTC") }
        #expect(
            error?.description == #"VACANCY_TIME_ZONE="London" is invalid: expected an IANA time zone name such as Europe/London or UTC"#)
    }

    @Test func calendarDaysParseStrictly() {
        #expect(CalendarDay("2026-02-28")?.description == "2026-02-28")
        #expect(CalendarDay("2026-02-30") == nil)
        #expect(CalendarDay("2026-2-3") == nil)
        #expect(CalendarDay("2026-12-31")?.adding(days: 1).description == "2027-01-01")
        #expect(RFC3339.date(from: "2026-05-01T09:00:00.250Z") != nil)
        #expect(RFC3339.date(from: "2026-05-01T09:00:00+02:00") != nil)
        #expect(RFC3339.date(from: "yesterday") == nil)
    }
}
