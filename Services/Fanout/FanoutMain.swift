import Shared

/// Placeholder until the SSE fan-out lands: migrates, serves health, readiness and metrics.
@main
struct FanoutMain {
    static func main() async throws {
        try await ServiceHost.runHealthOnly(serviceName: "fanout", portVariable: "VACANCY_FANOUT_PORT", defaultPort: 8083)
    }
}
