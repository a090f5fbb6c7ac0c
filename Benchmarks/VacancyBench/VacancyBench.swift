import ArgumentParser

@main
struct VacancyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vacancy-bench",
        abstract: "Load generators for Vacancy's services; each prints a one-line summary and can write JSON.",
        subcommands: [BookingLoad.self, DrainWatch.self, EventLatency.self, SSELoad.self, WaitlistBench.self, ResilienceCommand.self]
    )
}
