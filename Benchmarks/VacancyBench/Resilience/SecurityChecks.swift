import AsyncHTTPClient
import Foundation
import NIOCore
import Shared
import TestSupport

/// Scenario "security": no private topic without a valid token (none, expired, wrong
/// signature, `alg: none`, wrong topic), a valid one streams the customer's own events,
/// no secret ever reaches a log, and the router's per-address rate limit holds against one
/// flooding client while clients from other addresses are served.
struct SecurityChecks {
    let stack: Stack
    let client: HTTPClient
    let logDirectory: String

    func run() async throws -> ScenarioResult {
        var failures: [String] = []
        let customer = "resilience-user"
        let now = Date()
        let signer = TokenSigner(secret: Stack.tokenSecret)
        let minted = try await mintToken(sub: customer, topics: [Topic.user(customer)])
        let forged = try await TokenSigner(secret: "not-the-secret").sign(
            SubscriberToken(sub: customer, topics: [Topic.user(customer)], expires: now + 600))
        let expired = try await signer.sign(
            SubscriberToken(sub: customer, topics: [Topic.user(customer)], expires: now - 5, issued: now - 600))
        let unsigned = Self.unsignedToken(sub: customer, topics: [Topic.user(customer)], expires: now + 600)

        let refusals: [(String, String, String?, Int)] = [
            ("no token", Topic.user(customer), nil, 401),
            ("expired", Topic.user(customer), expired, 401),
            ("wrong signature", Topic.user(customer), forged, 401),
            ("alg: none", Topic.user(customer), unsigned, 401),
            ("garbage", Topic.user(customer), "not.a.jwt", 401),
            ("another customer's topic", Topic.user("someone-else"), minted, 403),
            ("admin with a customer token", "admin", minted, 403),
        ]
        for (name, topic, token, expected) in refusals {
            for place in [TokenPlace.header, .query] {
                let (status, contentType) = try await openStream(topic: topic, token: token, place: place)
                if status != expected || !contentType.hasPrefix("application/problem+json") {
                    failures.append("\(name) (\(place)): \(status) \(contentType), expected \(expected) problem+json")
                }
            }
        }

        // The right token streams the customer's own booking.
        let watcher = EventWatcher()
        watcher.start(url: stack.routerURL + "/events?topic=\(Topic.user(customer))&token=\(minted)", client: client, from: nil)
        defer { watcher.stop() }
        try await waitUntil(within: .seconds(10), "the private stream opened") { watcher.connects > 0 }
        let api = RouterAPI(baseURL: stack.routerURL, client: client)
        let session = try await api.createSession(index: 300, capacity: 10)
        let (booked, _) = try await api.send(.book(session: session, customer: customer, seats: 1, hold: false))
        if booked != 201 { failures.append("booking for the private stream answered \(booked)") }
        if await watcher.firstEvent(after: 0, within: .seconds(5)) == nil
            || !watcher.events.contains(where: { $0.type == "booking.updated" })
        {
            failures.append("the customer's own booking.updated did not arrive on the private stream")
        }
        watcher.stop()

        // A wrong key is refused, and neither it nor the real key nor the token secret is logged.
        let wrongKey = "resilience-wrong-key-\(UUID().uuidString)"
        let (wrong, _) = try await api.post("/api/v1/sessions", body: "{}", apiKey: wrongKey)
        if wrong != 401 { failures.append("a wrong API key answered \(wrong)") }
        try await Task.sleep(for: .milliseconds(500))
        let secrets = [Stack.apiKey, wrongKey, Stack.tokenSecret, minted]
        var leaks = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: logDirectory) where file.hasSuffix(".log") {
            let text = (try? String(contentsOfFile: logDirectory + "/" + file, encoding: .utf8)) ?? ""
            for secret in secrets where text.contains(secret) {
                leaks += 1
                failures.append("\(file) contains a secret (\(secret.prefix(6))…)")
            }
        }

        let flood = try await floodRouter()
        if !flood.holds { failures.append("rate limit: \(flood.summary)") }

        let line =
            "security: \(refusals.count * 2) refused subscriptions checked (header and query token), private stream delivered "
            + "\(watcher.events.count) events; secrets in logs \(leaks); \(flood.summary)"
            + (failures.isEmpty ? "" : "; FAILURES: " + failures.joined(separator: "; "))
        return ScenarioResult(
            name: "Security", load: "one flooding client against \(flood.others) others, each on its own loopback address",
            faults: "no, expired, forged, alg: none, garbage and wrong-topic tokens; a wrong API key",
            eventsChecked: watcher.events.count, lost: 0, duplicated: 0, overCapacity: 0, passed: failures.isEmpty, line: line)
    }

    enum TokenPlace: CustomStringConvertible {
        case header, query
        var description: String { self == .header ? "Authorization header" : "token parameter" }
    }

    private func openStream(topic: String, token: String?, place: TokenPlace) async throws -> (Int, String) {
        var url = stack.routerURL + "/events?topic=\(topic)"
        var request = HTTPClientRequest(url: url)
        if let token {
            switch place {
            case .header: request.headers.add(name: "Authorization", value: "Bearer \(token)")
            case .query:
                url += "&token=\(token)"
                request.url = url
            }
        }
        let response = try await client.execute(request, timeout: .seconds(5))
        let contentType = response.headers.first(name: "Content-Type") ?? ""
        if response.status == .ok {
            // Refused requests end on their own; a stream that opened is dropped here.
            return (200, contentType)
        }
        _ = try await response.body.collect(upTo: 1 << 16)
        return (Int(response.status.code), contentType)
    }

    private func mintToken(sub: String, topics: [String]) async throws -> String {
        let body = #"{"sub": "\#(sub)", "topics": ["\#(topics.joined(separator: "\", \""))"], "ttl_seconds": 600}"#
        let (status, object) = try await RouterAPI(baseURL: stack.routerURL, client: client).postJSON("/api/v1/tokens", body: body)
        guard status == 201 || status == 200, let token = object?["token"] as? String else {
            throw ResilienceFailure("POST /api/v1/tokens answered \(status)")
        }
        return token
    }

    /// A token with `alg: none` and no signature, as an attacker would send it.
    static func unsignedToken(sub: String, topics: [String], expires: Date) -> String {
        func encode(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
        }
        let payload =
            #"{"sub":"\#(sub)","topics":["\#(topics.joined(separator: "\",\""))"],"exp":\#(Int(expires.timeIntervalSince1970)),"iat":0}"#
        return encode(#"{"alg":"none","typ":"JWT"}"#) + "." + encode(payload) + "."
    }

    struct Flood {
        var flooderServed = 0
        var flooderLimited = 0
        var othersServed = 0
        var othersLimited = 0
        var others = 0
        var seconds = 0
        /// What the limit lets one address have in `seconds`: the burst plus the refill.
        var allowance = 0

        var holds: Bool { flooderLimited > 0 && flooderServed <= allowance && othersLimited == 0 && othersServed > 0 }
        var summary: String {
            "rate limit: flooder served \(flooderServed) (allowance \(allowance)) and refused 429 \(flooderLimited) in \(seconds) s; "
                + "\(others) other clients served \(othersServed), refused \(othersLimited)"
        }
    }

    /// One client on 127.0.0.2 calls as fast as it can for a few seconds, while five on
    /// 127.0.0.3–7 each call a few times a second; the router under test keeps its default limits.
    private func floodRouter() async throws -> Flood {
        let limited = stack.limitedRouter
        try limited.start()
        defer { limited.stop() }
        try await limited.waitReady(client: client)
        var flood = Flood()
        flood.seconds = 3
        flood.others = 5
        // Defaults: 50 calls a second, a burst of 100.
        flood.allowance = 100 + 50 * flood.seconds + 10
        let path = "/api/v1/availability?date=2030-01-01"
        let port = limited.port
        let seconds = flood.seconds
        async let flooder: [Int] = Self.onThread {
            let deadline = ContinuousClock.now + .seconds(seconds)
            var statuses: [Int] = []
            while ContinuousClock.now < deadline {
                guard let socket = try? RawSocket(port: port, source: "127.0.0.2") else { continue }
                try? socket.sendGET(path, headers: ["Connection: close"])
                statuses.append(socket.readStatus())
            }
            return statuses
        }
        let others: [[Int]] = try await withThrowingTaskGroup(of: [Int].self) { group in
            for index in 0..<flood.others {
                group.addTask {
                    try await Self.onThread {
                        var statuses: [Int] = []
                        for _ in 0..<(seconds * 4) {
                            if let socket = try? RawSocket(port: port, source: "127.0.0.\(3 + index)") {
                                try? socket.sendGET(path, headers: ["Connection: close"])
                                statuses.append(socket.readStatus())
                            }
                            usleep(250_000)
                        }
                        return statuses
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let flooderStatuses = try await flooder
        flood.flooderServed = flooderStatuses.filter { $0 == 200 }.count
        flood.flooderLimited = flooderStatuses.filter { $0 == 429 }.count
        flood.othersServed = others.joined().filter { $0 == 200 }.count
        flood.othersLimited = others.joined().filter { $0 == 429 }.count
        return flood
    }

    /// Runs blocking socket work on a thread of its own, off the cooperative pool.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: work()) }.start()
        }
    }
}
