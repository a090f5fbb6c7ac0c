import Shared

@main
struct AvailabilityMain {
    static func main() async throws {
        try await ServiceHost.main(
            serviceName: "availability",
            readConfiguration: { try AvailabilityConfiguration(reader: &$0) },
            common: \.common,
            makeApplication: { configuration, logger in AvailabilityApp.make(configuration: configuration, logger: logger) }
        )
    }
}
