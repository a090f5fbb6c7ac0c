import Foundation
import Hummingbird
import Shared

@main
struct AvailabilityMain {
    static func main() async throws {
        var reader = ConfigReader()
        let configuration: AvailabilityConfiguration
        do {
            configuration = try AvailabilityConfiguration(reader: &reader)
        } catch {
            FileHandle.standardError.write(Data("vacancy-availability: \(error)\n".utf8))
            exit(2)
        }
        let logger = Observability.bootstrapLogging(
            format: configuration.common.logFormat, level: configuration.common.logLevel, label: "vacancy.availability"
        )
        reader.log(to: logger)
        try await AvailabilityApp.make(configuration: configuration, logger: logger).runService()
    }
}
