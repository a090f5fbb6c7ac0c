import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Fanout

/// `/admin`, the operator's live view, in a real browser through the router, in front of the
/// real bookings service, calculator and fan-out (metrics every second).
@Suite("Operator's live view in a browser", .serialized)
struct AdminPageBrowserTests {
    @Test func theLiveViewMovesWithBookingsAndAsksForATokenWithoutDemoMode() async throws {
        let output = TestEnvironment.outputDirectory.appendingPathComponent("browser-admin")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                try await withCalculator(on: db, pollInterval: .milliseconds(500)) { availabilityURL in
                    try await withFanout(on: db, configure: { $0.metricsInterval = .seconds(1) }) { fanout in
                        var environment = [
                            "VACANCY_BOOKINGS_URL": bookings.baseURL, "VACANCY_AVAILABILITY_URL": availabilityURL,
                            "VACANCY_FANOUT_URL": fanout.baseURL, "VACANCY_WEB_ROOT": LiveCalendarBrowserTests.webRoot,
                        ]
                        let browser = try await HeadlessBrowser.launch(logPath: output.appendingPathComponent("chromium.log").path)
                        let page = CalendarPage(browser: browser, output: output)
                        try await withCleanup(
                            {
                                try await withRouter(environment: environment) { routerURL, _ in
                                    try await Self.withoutDemoMode(page: page, routerURL: routerURL, bookings: bookings)
                                }
                                environment["VACANCY_DEMO"] = "1"
                                environment["VACANCY_DEMO_KEY"] = BookingsHarness.apiKey
                                try await withRouter(environment: environment) { routerURL, _ in
                                    try await Self.inDemoMode(page: page, routerURL: routerURL, bookings: bookings)
                                }
                            }, cleanup: { await browser.close() })
                    }
                }
            }
        }
    }

    /// No demo key: the page asks for a token and shows nothing, opens no stream; a token
    /// that is not an admin one is refused; an admin token shows the figures.
    static func withoutDemoMode(page: CalendarPage, routerURL: String, bookings: BookingsHarness) async throws {
        try await page.browser.navigate(to: routerURL + "/admin")
        try await page.expect(
            "document.querySelector('#token-form') && !document.querySelector('#token-form').hidden", within: 5, "it asks for a token")
        #expect(
            try await page.browser.evaluate("document.querySelector('#figures').hidden && document.querySelector('#lists').hidden") as? Bool
                == true)
        #expect(
            try await page.browser.evaluate("document.querySelectorAll('#fullest tbody tr').length") as? Int == 0, "nothing private shown")
        #expect(
            try await page.browser.evaluate("performance.getEntriesByType('resource').filter(r => r.name.includes('/events')).length")
                as? Int == 0,
            "no stream opened without a token")

        func paste(_ token: String) async throws {
            try await page.browser.evaluate(
                "document.querySelector('#token').value = '\(token)'; document.querySelector('#token-form').requestSubmit(); true")
        }
        let customer = try await bookings.post("/api/v1/tokens", #"{"sub": "c1", "topics": ["user.c1"]}"#)
        try await paste(try #require(customer.string("token")))
        try await page.expect(
            "document.querySelector('#token-problem').textContent.includes('refused') && document.querySelector('#figures').hidden",
            within: 5,
            "a token for another topic is refused")
        let admin = try await bookings.post("/api/v1/tokens", #"{"sub": "operator", "topics": ["admin"]}"#)
        try await paste(try #require(admin.string("token")))
        try await page.expect(
            "!document.querySelector('#figures').hidden && document.querySelector('#connection').dataset.state === 'live'", within: 5,
            "an admin token shows the figures")
        try await page.expect("document.querySelector('#streams').textContent !== '–'", within: 5, "the first figures arrive")
        #expect(
            try await page.browser.evaluate("document.querySelector('#token').value") as? String == "", "the token is not left in the form")
        #expect(
            try await page.browser.evaluate("localStorage.length + sessionStorage.length + document.cookie.length") as? Int == 0,
            "kept only in memory")
    }

    /// Demo mode: the router's key mints the token; bookings through the API move the figures,
    /// fill the charts, raise an alert and put their session at the top of the fullest.
    static func inDemoMode(page: CalendarPage, routerURL: String, bookings: BookingsHarness) async throws {
        let session = try await bookings.createSession(capacity: 5, daysAhead: 3, courseType: "Night Watch", location: "Tower")
        let earlierErrors = page.browser.errors.count
        try await page.browser.navigate(to: routerURL + "/admin")
        try await page.expect(
            "!document.querySelector('#figures').hidden && document.querySelector('#connection').dataset.state === 'live'", within: 5,
            "demo mode needs no token")
        try await page.expect("document.querySelector('#head').textContent !== '–'", within: 5, "the figures arrive")
        let errors = page.browser.errors.dropFirst(earlierErrors)
        #expect(errors.isEmpty, "errors in the page's console on load: \(errors)")
        let headBefore =
            try await page.browser.evaluate("Number(document.querySelector('#head').textContent.replace(/\\D/g, ''))") as? Int ?? -1

        // A booking every 150 ms for 3 s, the first two on the small session (3 of 5 taken: low).
        let other = try await bookings.createSession(capacity: 100, daysAhead: 4)
        #expect(try await bookings.book(session: session, adults: 2, customer: "n1").status == 201)
        #expect(try await bookings.book(session: session, adults: 1, customer: "n2").status == 201)
        for index in 0..<20 {
            #expect(try await bookings.book(session: other, adults: 1, customer: "b\(index)").status == 201)
            try await Task.sleep(for: .milliseconds(150))
        }
        try await page.expect(
            "Number(document.querySelector('#head').textContent.replace(/\\D/g, '')) > \(headBefore)", within: 5, "the log head moves")
        try await page.expect("Number(document.querySelector('#bookings').textContent) > 0", within: 5, "bookings per second are counted")
        try await page.expect("document.querySelector('#deliveries').textContent !== '–'", within: 5, "deliveries per second are shown")
        try await page.expect(
            "Number(document.querySelector('#chart-bookings').dataset.points) >= 3 && !!document.querySelector('#chart-bookings polyline')",
            within: 5, "the bookings chart has points")
        try await page.expect(
            "[...document.querySelectorAll('#alerts li')].some(li => li.textContent.includes('low') && li.textContent.includes('Night Watch'))",
            within: 5, "the low alert shows as it fires")
        try await page.expect(
            "document.querySelector('#fullest tbody tr')?.dataset.sessionId === '\(session)' && document.querySelector('#fullest tbody tr td:nth-child(3)').textContent === '60 %'",
            within: 5, "the fullest session leads the list")
        try await page.browser.screenshot(to: page.output.appendingPathComponent("admin.png").path)
        let exceptions = page.browser.exceptions
        #expect(exceptions.isEmpty, "\(exceptions)")
    }
}
