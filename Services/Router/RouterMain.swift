import Foundation
import Hummingbird
import Shared

/// Placeholder until the router lands: migrates, serves health, readiness and metrics.
@main
struct RouterMain {
    static func main() async throws {
        var reader = ConfigReader()
        let common = try CommonConfiguration(serviceName: "router", portVariable: "VACANCY_ROUTER_PORT", defaultPort: 8080, reader: &reader)
        let logger = Observability.bootstrapLogging(format: common.logFormat, level: common.logLevel, label: "vacancy.router")
        reader.log(to: logger)
        let host = ServiceHost(configuration: common, logger: logger)
        try await host.makeApplication(router: host.makeRouter()).runService()
    }
}
