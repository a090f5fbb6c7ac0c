import Shared

@main
struct RouterMain {
    static func main() async throws {
        try await ServiceHost.main(
            serviceName: "router",
            readConfiguration: { try RouterConfiguration(reader: &$0) },
            common: { $0 },
            makeApplication: { configuration, logger in
                do {
                    return try RouterApp.make(configuration: configuration, logger: logger)
                } catch {
                    logger.critical("cannot start: \(String(reflecting: error))")
                    fatalError("cannot start the router: \(error)")
                }
            }
        )
    }
}
