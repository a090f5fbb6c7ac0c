import Foundation
import Hummingbird
import Shared

/// Placeholder until the SSE fan-out lands: migrates, serves health, readiness and metrics.
@main
struct FanoutMain {
    static func main() async throws {
        var reader = ConfigReader()
        let common = try CommonConfiguration(serviceName: "fanout", portVariable: "VACANCY_FANOUT_PORT", defaultPort: 8083, reader: &reader)
        let logger = Observability.bootstrapLogging(format: common.logFormat, level: common.logLevel, label: "vacancy.fanout")
        reader.log(to: logger)
        let host = ServiceHost(configuration: common, logger: logger)
        try await host.makeApplication(router: host.makeRouter()).runService()
    }
}
