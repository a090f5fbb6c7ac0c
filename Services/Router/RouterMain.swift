import Shared

/// Placeholder until the router lands: migrates, serves health, readiness and metrics.
@main
struct RouterMain {
    static func main() async throws {
        try await ServiceHost.runHealthOnly(serviceName: "router", portVariable: "VACANCY_ROUTER_PORT", defaultPort: 8080)
    }
}
