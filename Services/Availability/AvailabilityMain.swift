import Shared

/// Placeholder until the calculator lands: migrates, serves health, readiness and metrics.
@main
struct AvailabilityMain {
    static func main() async throws {
        try await ServiceHost.runHealthOnly(serviceName: "availability", portVariable: "VACANCY_AVAILABILITY_PORT", defaultPort: 8082)
    }
}
