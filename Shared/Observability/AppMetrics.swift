import CoreMetrics
import Prometheus

/// One app's own figures: the counters, gauges and timers a service keeps, in a Prometheus
/// registry of its own. Two apps in one process (the tests run many side by side) never add
/// to each other's counts. `/metrics` serves these first, then the process-wide registry,
/// which holds what libraries record through swift-metrics' global factory (Hummingbird's
/// request metrics).
public struct AppMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = Observability.makeFactory(registry: registry)
    }

    /// The counter `label` with `dimensions`; the same label and dimensions always count into one series.
    public func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
    }

    /// The gauge `label` with `dimensions`.
    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
    }

    /// The duration histogram `label`, in seconds, with Vacancy's buckets.
    public func timer(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Timer {
        CoreMetrics.Timer(label: label, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
    }

    /// The Prometheus text exposition: this app's metrics, then the process-wide ones.
    public func prometheusText() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        Observability.registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
