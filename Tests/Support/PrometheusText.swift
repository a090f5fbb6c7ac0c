/// A Prometheus text exposition as a service's `/metrics` serves it, read by the tests and
/// the resilience scenarios.
public struct PrometheusText: Sendable {
    public let text: String

    public init(_ text: String) {
        self.text = text
    }

    /// What `url` (a service's `/metrics`) serves now.
    public static func fetch(_ url: String) async throws -> PrometheusText {
        PrometheusText(try await TestHTTP.send(.GET, url).text)
    }

    /// The value of the sample written exactly `name` (with its labels, as `/metrics` writes
    /// them: `vacancy_fanout_subscribers{transport="h2"}`), or nil when there is none.
    public func value(_ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// Every sample of the metric `name`, whatever its labels, summed (0 when there is none).
    public func sum(_ name: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}
