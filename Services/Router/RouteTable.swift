import Foundation
import Shared

/// Which upstream serves which path: the longest matching prefix wins. Read from
/// `VACANCY_ROUTES` as `prefix=upstream` pairs separated by commas.
struct RouteTable: Sendable, Equatable {
    struct Route: Sendable, Equatable {
        let prefix: String
        let upstream: String
    }

    static let defaultSpecification =
        "/api/v1/sessions=bookings,/api/v1/bookings=bookings,/api/v1/waitlist=bookings,/api/v1/tokens=bookings,/openapi.yaml=bookings,"
        + "/api/v1/availability=availability,/api/v1/calendar=availability,/api/v1/presence=fanout,/events=fanout"

    /// Longest prefix first, so `/api/v1/bookings` beats `/api/v1`.
    let routes: [Route]

    init(routes: [Route]) {
        self.routes = routes.sorted { $0.prefix.count > $1.prefix.count }
    }

    /// Parses `prefix=upstream,…`; every upstream must be one of `upstreams`.
    init(parsing specification: String, upstreams: Set<String>) throws {
        var routes: [Route] = []
        for pair in specification.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[0].hasPrefix("/"), upstreams.contains(parts[1]) else {
                throw ConfigReader.InvalidValue(
                    name: "VACANCY_ROUTES", value: String(pair),
                    expected:
                        "prefix=upstream with a prefix starting with / and an upstream among \(upstreams.sorted().joined(separator: ", "))")
            }
            routes.append(Route(prefix: parts[0], upstream: parts[1]))
        }
        self.init(routes: routes)
    }

    /// The route for `path`: a prefix matches the whole path or up to a `/` (so `/events`
    /// matches `/events` and `/events/x` but not `/eventsx`).
    func route(for path: String) -> Route? {
        routes.first { route in
            guard path.hasPrefix(route.prefix) else { return false }
            if path.count == route.prefix.count || route.prefix.hasSuffix("/") { return true }
            let next = path[path.index(path.startIndex, offsetBy: route.prefix.count)]
            return next == "/" || next == "?"
        }
    }
}
