import Foundation
import Hummingbird
import Shared

/// Placeholder until the calculator lands: migrates, serves health, readiness and metrics.
@main
struct AvailabilityMain {
    static func main() async throws {
        var reader = ConfigReader()
        let common = try CommonConfiguration(
            serviceName: "availability", portVariable: "VACANCY_AVAILABILITY_PORT", defaultPort: 8082, reader: &reader)
        let logger = Observability.bootstrapLogging(format: common.logFormat, level: common.logLevel, label: "vacancy.availability")
        reader.log(to: logger)
        let host = ServiceHost(configuration: common, logger: logger)
        try await host.makeApplication(router: host.makeRouter()).runService()
    }
}
