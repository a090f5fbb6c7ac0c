import Foundation
import Hummingbird
import Logging
import Shared

@main
struct BookingsMain {
    static func main() async throws {
        var reader = ConfigReader()
        let configuration: BookingsConfiguration
        do {
            configuration = try BookingsConfiguration(reader: &reader)
        } catch {
            FileHandle.standardError.write(Data("vacancy-bookings: \(error)\n".utf8))
            exit(2)
        }
        let logger = Observability.bootstrapLogging(
            format: configuration.common.logFormat, level: configuration.common.logLevel, label: "vacancy.bookings"
        )
        reader.log(to: logger)
        let app = BookingsApp.make(configuration: configuration, logger: logger)
        try await app.runService()
    }
}
