import Shared

@main
struct FanoutMain {
    static func main() async throws {
        try await ServiceHost.main(
            serviceName: "fanout",
            readConfiguration: { try FanoutConfiguration(reader: &$0) },
            common: \.common,
            makeApplication: { configuration, logger in
                do {
                    return try FanoutApp.make(configuration: configuration, logger: logger)
                } catch {
                    logger.critical("cannot start: \(String(reflecting: error))")
                    fatalError("cannot start the fan-out: \(error)")
                }
            }
        )
    }
}
