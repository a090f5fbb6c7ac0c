import Foundation
import Shared
import TestSupport
import Testing
import Yams

@testable import Availability
@testable import Bookings
@testable import Fanout
@testable import Router

/// compose.yaml and the Dockerfile, checked without a Docker engine: the file is valid
/// Compose, and every service gets variables its code reads, with values it accepts, on
/// the ports the others and the healthchecks use.
@Suite("compose.yaml and Dockerfile")
struct ComposeFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    static let schema = root.appendingPathComponent("Tests/Fixtures/compose-spec/compose-spec.json").path
    static let validator = """
        import json, sys, yaml, jsonschema
        document = yaml.safe_load(open(sys.argv[1]))
        schema = json.load(open(sys.argv[2]))
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=lambda e: list(e.path))
        for error in errors:
            print("compose.yaml:", "/".join(map(str, error.path)) or "(top)", error.message, file=sys.stderr)
        sys.exit(1 if errors else 0)
        """

    static func validate(_ path: String) async throws -> Int32 {
        try await runCommand(["/usr/bin/python3", "-c", validator, path, schema])
    }

    @Test func composeFileIsValidAgainstTheComposeSpecification() async throws {
        #expect(try await Self.validate(Self.root.appendingPathComponent("compose.yaml").path) == 0)
        // The validator does refuse what is not Compose.
        let broken = TestEnvironment.outputDirectory.appendingPathComponent("broken-compose.yaml")
        try "services:\n  web:\n    image: x\n    ports: 8080\n    restart: sometimes\n".write(
            to: broken, atomically: true, encoding: .utf8)
        #expect(try await Self.validate(broken.path) != 0)
    }

    @Test func everyServiceReadsTheVariablesComposeGivesItOnTheRightPorts() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("compose.yaml"), encoding: .utf8)
        let compose = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])

        func environment(_ name: String) throws -> [String: String] {
            let service = try #require(services[name] as? [String: Any], "no service \(name)")
            let raw = try #require(service["environment"] as? [String: Any], "\(name) has no environment map")
            return raw.mapValues { Self.interpolateDefaults("\($0)") }
        }
        func read<C>(_ name: String, _ make: (inout ConfigReader) throws -> C) throws -> (C, Set<String>) {
            let given = try environment(name)
            var reader = ConfigReader(environment: given)
            let configuration = try make(&reader)
            let known = Set(reader.entries.map(\.name))
            let unknown = given.keys.filter { $0.hasPrefix("VACANCY_") && !known.contains($0) }
            #expect(unknown.isEmpty, "\(name) is given variables its code never reads: \(unknown.sorted())")
            return (configuration, known)
        }
        func healthPort(_ name: String) throws -> Int? {
            let service = try #require(services[name] as? [String: Any])
            let test = ((service["healthcheck"] as? [String: Any])?["test"] as? [Any])?.map { "\($0)" } ?? []
            return test.last.flatMap { URL(string: $0)?.port }
        }

        // Two instances of each service, configured alike.
        let instances = ["1", "2"]
        for kind in ["bookings", "availability", "fanout"] {
            #expect(try environment("\(kind)-1") == environment("\(kind)-2"), "\(kind)'s two instances are alike")
        }
        let (bookings, _) = try read("bookings-1") { try BookingsConfiguration(reader: &$0) }
        let (availability, _) = try read("availability-1") { try AvailabilityConfiguration(reader: &$0) }
        let (fanout, _) = try read("fanout-1") { try FanoutConfiguration(reader: &$0) }
        let (router, _) = try read("router") { try RouterConfiguration(reader: &$0) }

        for instance in instances {
            #expect(try healthPort("bookings-\(instance)") == bookings.common.port)
            #expect(try healthPort("availability-\(instance)") == availability.common.port)
            #expect(try healthPort("fanout-\(instance)") == fanout.common.port)
        }
        #expect(try healthPort("router") == router.port)
        for configuration in [bookings.common, availability.common, fanout.common] {
            #expect(configuration.host == "0.0.0.0", "\(configuration.serviceName) must listen beyond its container")
            #expect(configuration.database.url.host == "postgres")
        }
        #expect(router.host == "0.0.0.0")
        // The router reaches every instance by its compose name on the port that service listens on.
        #expect(router.upstreams["bookings"] == instances.map { "http://bookings-\($0):\(bookings.common.port)" })
        #expect(router.upstreams["availability"] == instances.map { "http://availability-\($0):\(availability.common.port)" })
        #expect(router.upstreams["fanout"] == instances.map { "http://fanout-\($0):\(fanout.common.port)" })
        // Tokens minted by bookings verify at the fan-out.
        #expect(bookings.tokenSecret == fanout.tokenSecret)
        // In demo mode the router's key is one bookings accepts.
        if let key = router.demoKey { #expect(bookings.apiKeys.caller(for: Substring(key)) != nil) }

        let routerService = try #require(services["router"] as? [String: Any])
        let published = Set(
            ((routerService["ports"] as? [Any]) ?? []).compactMap { "\($0)".split(separator: ":").last.flatMap { Int($0) } })
        #expect(published == [router.port, try #require(router.tls?.port)])

        let postgres = try #require(services["postgres"] as? [String: Any])
        let postgresEnvironment = try #require(postgres["environment"] as? [String: Any])
        #expect(bookings.common.database.url.username == postgresEnvironment["POSTGRES_USER"] as? String)
        #expect(bookings.common.database.url.database == postgresEnvironment["POSTGRES_DB"] as? String)
        #expect(postgres["healthcheck"] != nil)
        func waits(_ name: String, for dependency: String) throws -> Bool {
            let service = try #require(services[name] as? [String: Any])
            let dependsOn = service["depends_on"] as? [String: Any] ?? [:]
            return (dependsOn[dependency] as? [String: Any])?["condition"] as? String == "service_healthy"
        }
        for name in ["bookings", "availability", "fanout"].flatMap({ kind in instances.map { "\(kind)-\($0)" } }) {
            #expect(try waits(name, for: "postgres"), "\(name) waits for a healthy postgres")
            #expect(try waits("router", for: name), "the router waits for a healthy \(name)")
        }
        #expect(try waits("demo-data", for: "bookings-1"))
    }

    @Test func theDockerfileBuildsWhatComposeRuns() throws {
        let dockerfile = try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8)
        let compose = try #require(
            try Yams.load(yaml: String(contentsOf: Self.root.appendingPathComponent("compose.yaml"), encoding: .utf8)) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        for name in ["bookings-1", "availability-1", "fanout-1", "router"] {
            let service = try #require(services[name] as? [String: Any])
            let command = try #require((service["command"] as? [Any])?.first as? String)
            #expect(dockerfile.contains("--product \(command)"), "the image builds \(command)")
        }
        let router = try #require(services["router"] as? [String: Any])
        let environment = try #require(router["environment"] as? [String: Any])
        // The files the router is pointed at are made or copied in the image.
        #expect(environment["VACANCY_WEB_ROOT"] as? String == "/app/web" && dockerfile.contains("./web"))
        #expect(environment["VACANCY_TLS_CERT"] as? String == "/app/tls/cert.pem" && dockerfile.contains("tls/cert.pem"))
        #expect(dockerfile.contains("FROM swift:") && dockerfile.contains("AS build"), "a multi-stage build")
    }

    /// `${NAME:-default}` → `default`, as Compose does when NAME is unset.
    static func interpolateDefaults(_ value: String) -> String {
        var result = value
        while let start = result.range(of: "${"), let end = result.range(of: "}", range: start.upperBound..<result.endIndex) {
            let inner = result[start.upperBound..<end.lowerBound]
            let fallback = inner.range(of: ":-").map { String(inner[$0.upperBound...]) } ?? ""
            result.replaceSubrange(start.lowerBound..<end.upperBound, with: fallback)
        }
        return result
    }
}
