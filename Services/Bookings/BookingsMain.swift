import Shared

@main
struct BookingsMain {
    static func main() async throws {
        try await ServiceHost.main(
            serviceName: "bookings",
            readConfiguration: { try BookingsConfiguration(reader: &$0) },
            common: \.common,
            makeApplication: { configuration, logger in BookingsApp.make(configuration: configuration, logger: logger) }
        )
    }
}
