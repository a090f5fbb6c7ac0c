import Metrics
import Shared
import TestSupport
import Testing

/// Each app counts into its own registry, so apps side by side in one process (as the tests
/// run them) never see each other's figures, while what libraries record through the global
/// factory shows in every app's `/metrics`.
@Suite struct AppMetricsTests {
    @Test func twoAppsNeverShareACount() {
        let first = AppMetrics()
        let second = AppMetrics()
        first.counter("vacancy_test_bookings_total").increment(by: 3)
        second.counter("vacancy_test_bookings_total").increment()
        #expect(PrometheusText(first.prometheusText()).value("vacancy_test_bookings_total") == 3)
        #expect(PrometheusText(second.prometheusText()).value("vacancy_test_bookings_total") == 1)
        first.gauge("vacancy_test_open", [("transport", "h2")]).record(7)
        #expect(PrometheusText(first.prometheusText()).value(#"vacancy_test_open{transport="h2"}"#) == 7)
        #expect(PrometheusText(second.prometheusText()).value(#"vacancy_test_open{transport="h2"}"#) == nil)
    }

    @Test func oneLabelAndDimensionsIsOneSeriesHoweverOftenItIsAskedFor() {
        let metrics = AppMetrics()
        metrics.counter("vacancy_test_resets_total", [("reason", "behind_retention")]).increment()
        metrics.counter("vacancy_test_resets_total", [("reason", "behind_retention")]).increment()
        metrics.counter("vacancy_test_resets_total", [("reason", "ahead_of_log")]).increment()
        let text = metrics.prometheusText()
        #expect(PrometheusText(text).value(#"vacancy_test_resets_total{reason="behind_retention"}"#) == 2)
        #expect(PrometheusText(text).value(#"vacancy_test_resets_total{reason="ahead_of_log"}"#) == 1)
    }

    @Test func timersAreSecondsHistogramsWithVacancysBuckets() {
        let metrics = AppMetrics()
        metrics.timer("vacancy_test_lag_seconds").recordMilliseconds(3)
        let text = metrics.prometheusText()
        #expect(PrometheusText(text).value(#"vacancy_test_lag_seconds_bucket{le="0.002"}"#) == 0)
        #expect(PrometheusText(text).value(#"vacancy_test_lag_seconds_bucket{le="0.005"}"#) == 1)
        #expect(PrometheusText(text).value(#"vacancy_test_lag_seconds_bucket{le="2.5"}"#) == 1)
        #expect(PrometheusText(text).value("vacancy_test_lag_seconds_count") == 1)
    }

    @Test func whatLibrariesRecordGloballyShowsInEveryApp() {
        _ = Observability.registry
        Counter(label: "vacancy_test_library_requests_total").increment()
        let metrics = AppMetrics()
        let seen = PrometheusText(metrics.prometheusText()).value("vacancy_test_library_requests_total")
        #expect((seen ?? 0) >= 1, "the process-wide registry follows the app's own")
    }
}
