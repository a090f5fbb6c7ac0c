import Foundation
import PostgresNIO
import Shared
import TestSupport
import Testing

@testable import Fanout

/// The live calendar page in a real browser (headless chromium) through the router, in
/// front of the real bookings service, calculator and fan-out on one database.
@Suite("Live calendar in a browser", .serialized)
struct LiveCalendarBrowserTests {
    static let webRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../Services/Router/Web").standardized.path
    static let seedScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../scripts/seed-demo.sh").standardized.path

    @Test func theCalendarFollowsBookingsLiveAndAcrossAFanoutRestart() async throws {
        let output = TestEnvironment.outputDirectory.appendingPathComponent("browser")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try await TestDatabase.with { db in
            try await withBookingsService(on: db) { bookings in
                // The demo data exactly as `make run` loads it.
                let seeded = try await runCommand([Self.seedScript, bookings.baseURL, BookingsHarness.apiKey])
                try #require(seeded == 0, "scripts/seed-demo.sh failed")
                try await withCalculator(on: db, pollInterval: .milliseconds(500)) { availabilityURL in
                    let fanoutPort = try freePort()
                    let environment = [
                        "VACANCY_BOOKINGS_URL": bookings.baseURL, "VACANCY_AVAILABILITY_URL": availabilityURL,
                        "VACANCY_FANOUT_URL": "http://127.0.0.1:\(fanoutPort)", "VACANCY_WEB_ROOT": Self.webRoot,
                        "VACANCY_DEMO": "1", "VACANCY_DEMO_KEY": BookingsHarness.apiKey,
                    ]
                    try await withRouter(environment: environment) { routerURL, _ in
                        let browser = try await HeadlessBrowser.launch(logPath: output.appendingPathComponent("chromium.log").path)
                        let page = CalendarPage(browser: browser, output: output)
                        try await withCleanup({
                            try await Self.run(page: page, bookings: bookings, routerURL: routerURL, fanoutPort: fanoutPort, db: db)
                        }, cleanup: { await browser.close() })
                    }
                }
            }
        }
    }

    static func run(page: CalendarPage, bookings: BookingsHarness, routerURL: String, fanoutPort: Int, db: TestDatabase) async throws {
        // The week of the first demo day, as its snapshot has it.
        let firstDay = try await db.scalarText("SELECT min(starts_at)::date::text FROM sessions")
        let snapshot = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar?view=week&date=\(firstDay)")
        let expected = (snapshot.json["entries"] as? [[String: any Sendable]]) ?? []
        try #require(expected.count > 0)
        let firstID = expected.first?["id"] as? String
        let sessionID = try #require(firstID)

        try await withFanout(on: db, configure: { $0.common.port = fanoutPort }) { _ in
            try await page.browser.navigate(to: routerURL + "/#view=week&date=\(firstDay)")
            try await page.expect(
                "document.querySelectorAll('.session').length === \(expected.count)", within: 10, "the demo sessions of the week are shown")
            try await page.expect("document.querySelector('#connection').dataset.state === 'live'", within: 10, "the page is live")
            let titles =
                try await page.browser.evaluate("[...document.querySelectorAll('.session .title')].map(e => e.textContent).join('|')")
                as? String ?? ""
            #expect(titles.contains("First Aid"))
            try await page.expect(page.available(sessionID, is: 12), within: 1, "a fresh session shows 12 left")

            // A booking made through the API shows without a reload.
            #expect(try await page.browser.evaluate("window.__marker = 'same page'; true") as? Bool == true)
            let booked = try await bookings.book(session: sessionID, adults: 2)
            #expect(booked.status == 201)
            let started = ContinuousClock.now
            try await page.expect(page.available(sessionID, is: 10), within: 2, "the booking shows within 2 s")
            print("browser: booking → count shown in \(ContinuousClock.now - started)")
            #expect(try await page.browser.evaluate("window.__marker") as? String == "same page", "no reload happened")
            try await page.expect(
                "document.querySelector('.session[data-session-id=\"\(sessionID)\"] .spots').textContent === '10 left'", within: 1,
                "the chip says 10 left")
        }

        // The fan-out goes away: the stream is refused, so the page polls the snapshot and
        // still shows changes; when the fan-out is back on the same port it is live again.
        try await page.expect(
            "document.querySelector('#connection').dataset.state === 'polling'", within: 15, "the page falls back to polling")
        #expect(try await bookings.book(session: sessionID, adults: 1, customer: "customer-2").status == 201)
        try await page.expect(page.available(sessionID, is: 9), within: 8, "a booking shows by polling while the fan-out is down")
        try await withFanout(on: db, configure: { $0.common.port = fanoutPort }) { _ in
            try await page.expect("document.querySelector('#connection').dataset.state === 'live'", within: 20, "the page is live again")
            let booked = try await bookings.book(session: sessionID, adults: 1, customer: "customer-3")
            #expect(booked.status == 201)
            try await page.expect(page.available(sessionID, is: 8), within: 2, "the next booking shows after the restart")

            // Demo mode: book from the session's detail; the router adds the key.
            try await page.browser.evaluate("document.querySelector('.session[data-session-id=\"\(sessionID)\"]').click(); true")
            try await page.expect(
                "document.querySelector('#detail').open && !document.querySelector('#book-form').hidden", within: 2,
                "the detail offers booking")
            try await page.browser.evaluate(
                "document.querySelector('#book-adults').value = '3'; document.querySelector('#book-confirm').click(); true")
            try await page.expect(
                "document.querySelector('#book-result').textContent.startsWith('Booked 3 seat')", within: 3, "the page books")
            try await page.expect(page.available(sessionID, is: 5), within: 2, "the page's own booking shows live")
            let row = try await bookings.sessionRow(sessionID)
            #expect(row.booked == 7)
            try await page.browser.evaluate("document.querySelector('#detail').close(); true")

            // Almost full (3 or fewer), then full: the styles follow live.
            #expect(try await bookings.book(session: sessionID, adults: 2, customer: "customer-4").status == 201)
            try await page.expect(page.chip(sessionID, hasClass: "low"), within: 2, "3 left is styled almost full")
            let last = try await bookings.book(session: sessionID, adults: 3, customer: "customer-5")
            #expect(last.status == 201)
            try await page.expect(page.chip(sessionID, hasClass: "full"), within: 2, "0 left is styled full")
            try await page.expect(
                "document.querySelector('.session[data-session-id=\"\(sessionID)\"] .spots').textContent === 'Full'", within: 1,
                "a full chip says Full")

            // Full: the detail offers the waitlist; the visitor joins for three and sees their place.
            try await page.browser.evaluate("document.querySelector('.session[data-session-id=\"\(sessionID)\"]').click(); true")
            try await page.expect(
                "document.querySelector('#detail').open && !document.querySelector('#waitlist-form').hidden", within: 2,
                "a full session's detail offers the waitlist")
            try await page.browser.evaluate("document.querySelector('#waitlist-join').click(); true")
            try await page.expect(
                "(document.querySelector('#my-line .line-entry.waiting') || {}).textContent?.startsWith('You are number 1 in line')",
                within: 3, "the visitor sees their place in line")
            try await page.expect(
                "document.querySelector('.session[data-session-id=\"\(sessionID)\"] .spots').textContent === 'Full · 1 waiting'", within: 2,
                "the calendar says how many wait")
            try await page.browser.evaluate("document.querySelector('#detail').close(); true")
            // A cancel through the API: the seats are offered to the visitor, and the page says so within 2 s.
            let cancelled = ContinuousClock.now
            #expect(try await bookings.post("/api/v1/bookings/\(try #require(last.string("id")))/cancel", nil).status == 200)
            try await page.expect(
                "(document.querySelector('#my-line .line-entry.offered .offer-text') || {}).textContent?.includes('left to accept')",
                within: 2, "the offer banner appears with the time left")
            print("browser: cancel → offer banner shown in \(ContinuousClock.now - cancelled)")
            try await page.browser.evaluate("document.querySelector('#my-line .offer-accept').click(); true")
            await expectEventually(within: 3, "Accept confirms the offered booking") {
                (try? await bookings.sessionRow(sessionID)) .map { $0.booked == 12 && $0.held == 0 } == true
            }
            try await page.expect("document.querySelector('#my-line').hidden", within: 3, "an accepted offer leaves the line")

            // Month view, then a course filter.
            let month = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar?view=month&date=\(firstDay)")
            let monthCount = (month.json["entries"] as? [[String: any Sendable]])?.count ?? -1
            try await page.browser.evaluate("location.hash = 'view=month&date=\(firstDay)'; true")
            try await page.expect(
                "document.querySelectorAll('.calendar.month .session').length === \(monthCount)", within: 5,
                "the month view shows the month's sessions")
            try await page.browser.screenshot(to: page.output.appendingPathComponent("month.png").path)
            try await page.browser.evaluate(
                "const s = document.querySelector('#filter-course'); s.value = 'CPR and AED'; s.dispatchEvent(new Event('change')); true")
            try await page.expect(
                "(() => { const chips = [...document.querySelectorAll('.session')]; return chips.length > 0 && chips.length < \(monthCount) && chips.every(c => c.title.startsWith('CPR and AED')); })()",
                within: 5, "the course filter leaves only that course")

            // Phone width: one column, a list per day.
            try await page.browser.send(
                "Emulation.setDeviceMetricsOverride", ["width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true])
            try await page.expect(
                "getComputedStyle(document.querySelector('#calendar')).gridTemplateColumns.split(' ').length === 1", within: 2,
                "a phone-width screen gets one column")
            try await page.browser.screenshot(to: page.output.appendingPathComponent("phone.png").path)
        }
        let problems = page.browser.console.filter { $0.hasPrefix("exception") }
        #expect(problems.isEmpty, "uncaught exceptions in the page: \(problems)")
    }
}

/// The page under test: checks that save a screenshot and the console when they fail.
struct CalendarPage: Sendable {
    let browser: HeadlessBrowser
    let output: URL

    func available(_ sessionID: String, is count: Int) -> String {
        "document.querySelector('.session[data-session-id=\"\(sessionID)\"]')?.dataset.available === '\(count)'"
    }

    func chip(_ sessionID: String, hasClass name: String) -> String {
        "document.querySelector('.session[data-session-id=\"\(sessionID)\"]')?.classList.contains('\(name)') === true"
    }

    func expect(_ condition: String, within seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) async throws
    {
        if await browser.waitFor(condition, within: seconds) { return }
        let name = what.map { $0.isLetter || $0.isNumber ? $0 : "-" }.reduce("") { $0 + String($1) }
        let screenshot = output.appendingPathComponent("\(name).png").path
        try? await browser.screenshot(to: screenshot)
        let state = (try? await browser.evaluate("document.querySelector('#connection').dataset.state")) as? String ?? "?"
        Issue.record(
            "\(what): not true within \(seconds) s (connection \(state)); screenshot \(screenshot); console: \(browser.console.suffix(20))",
            sourceLocation: sourceLocation)
        throw HarnessError(what)
    }
}

extension TestDatabase {
    func scalarText(_ query: PostgresQuery) async throws -> String {
        let rows = try await database.query(query)
        return try rows[0].decode(String.self)
    }
}
