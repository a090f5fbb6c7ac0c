import Shared

/// Everything the availability calculator reads from the environment.
struct AvailabilityConfiguration: ServiceConfiguration {
    var common: CommonConfiguration
    /// How often the calculator looks for changes even without a NOTIFY.
    var pollInterval: Duration
    var batchSize: Int
    /// When a session is `low` and when it is in high demand.
    var rules: SeatRules
    var clock: ClockTick
    /// How often a session's moved waitlist positions may be told (0: after every batch).
    var positionInterval: Duration
    /// Whose today a read without `date` means (`VACANCY_TIME_ZONE`).
    var timeZone: String

    init(reader: inout ConfigReader) throws {
        common = try CommonConfiguration(
            serviceName: "availability", portVariable: "VACANCY_AVAILABILITY_PORT", defaultPort: 8082, reader: &reader
        )
        common.eventLoopExecutor = try CommonConfiguration.readEventLoopExecutor(&reader)
        pollInterval = try reader.milliseconds("VACANCY_POLL_MS", default: 1000, in: 50...60000)
        batchSize = try reader.int("VACANCY_DRAIN_BATCH", default: 1000, in: 1...10000)
        let defaults = SeatRules()
        rules = SeatRules(
            lowSeats: try reader.int("VACANCY_LOW_SEATS", default: defaults.lowSeats, in: 0...1000),
            highDemand: HighDemandRule(
                percent: try reader.int("VACANCY_HIGH_DEMAND_PERCENT", default: defaults.highDemand.percent, in: 0...99),
                window: .seconds(
                    try reader.int("VACANCY_HIGH_DEMAND_HOURS", default: defaults.highDemand.windowSeconds / 3600, in: 1...8760) * 3600)
            )
        )
        timeZone = try reader.timeZone("VACANCY_TIME_ZONE", default: "UTC")
        positionInterval = try reader.milliseconds("VACANCY_POSITION_INTERVAL_MS", default: 1000, in: 0...60_000)
        clock = ClockTick(
            interval: try reader.milliseconds("VACANCY_TICK_MS", default: 5000, in: 100...600_000),
            retentionHours: try reader.int("VACANCY_EVENT_RETENTION_HOURS", default: 24, in: 1...8760),
            keepAtLeast: try reader.int("VACANCY_EVENT_KEEP", default: 10_000, in: 0...100_000_000),
            rules: rules
        )
    }
}
