import Logging
import Metrics
import Prometheus
import Synchronization

/// Process-wide logging and metrics, bootstrapped once per process.
public enum Observability {
    private static let registryBox = Mutex<PrometheusCollectorRegistry?>(nil)
    private static let loggingBootstrapped = Mutex<Bool>(false)

    /// Bootstraps swift-log with the structured handler; later calls only return a logger.
    public static func bootstrapLogging(format: LogFormat, level: Logger.Level, label: String) -> Logger {
        loggingBootstrapped.withLock { done in
            if !done {
                LoggingSystem.bootstrap { label in StructuredLogHandler(label: label, format: format, level: level) }
                done = true
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }

    /// The process-wide Prometheus registry behind swift-metrics' global factory, created and
    /// bootstrapped on first use. Libraries record here (Hummingbird's request metrics); a
    /// service's own figures go to its `AppMetrics`.
    public static var registry: PrometheusCollectorRegistry {
        registryBox.withLock { box in
            if let registry = box { return registry }
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(makeFactory(registry: registry))
            box = registry
            return registry
        }
    }

    /// A factory recording into `registry`, with Vacancy's latency buckets (1 ms to 2.5 s).
    static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        ]
        return factory
    }
}
