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
                // The demo data exactly as `make run` loads it: London sessions on London's clock.
                let seeded = try await runCommand([
                    "/usr/bin/env", "VACANCY_TIME_ZONE=Europe/London", Self.seedScript, bookings.baseURL, BookingsHarness.apiKey,
                ])
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
                        // A visitor in London: London's sessions need no zone named, New York's do.
                        try await browser.send("Emulation.setTimezoneOverride", ["timezoneId": "Europe/London"])
                        let page = CalendarPage(browser: browser, output: output)
                        try await withCleanup(
                            {
                                try await Self.run(page: page, bookings: bookings, routerURL: routerURL, fanoutPort: fanoutPort, db: db)
                            }, cleanup: { await browser.close() })
                    }
                }
            }
        }
    }

    static func run(page: CalendarPage, bookings: BookingsHarness, routerURL: String, fanoutPort: Int, db: TestDatabase) async throws {
        // The week of the first demo day, as its snapshot has it, with a New York evening class
        // on that day too (19:00 there, already the next day in UTC): five sessions that day.
        let firstDay = try await db.scalarText("SELECT min(local_date)::text FROM sessions")
        let nineAM = try await db.scalarText(
            "SELECT to_char(min(starts_at) AT TIME ZONE 'Europe/London', 'HH24:MI') FROM sessions WHERE local_date = \(firstDay)::date")
        #expect(nineAM == "09:00", "the demo sessions start at 09:00 London time")
        let newYork = try await bookings.post(
            "/api/v1/sessions",
            SessionRequest(
                courseType: "CPR and AED", location: "New York", capacity: 12,
                startsAt: try Self.instant(firstDay, "19:00", in: "America/New_York"), length: 2 * 3600, timeZone: "America/New_York"
            ).body)
        let newYorkID = try #require(newYork.string("id"))
        #expect(newYork.string("date") == firstDay)
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
            // Loaded without an error: no exception, no console error, no failed load (a favicon's 404 among them).
            #expect(page.browser.errors.isEmpty, "errors in the page's console on load: \(page.browser.errors)")
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
            try await Self.checkTimeGrid(page: page, firstDay: firstDay, newYorkID: newYorkID)
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

            // Who is watching: the open detail follows the session's own topic, so the visitor
            // counts; another viewer of the session (on the fan-out directly) shows within a
            // presence interval or two, and every visible day says how many have it open.
            let sessionTopic = "availability.session." + sessionID.lowercased()
            try await page.expect(
                "document.querySelector('#detail-viewing').textContent === '1 viewing'", within: 8, "the detail counts its viewer")
            let otherViewer = try await EventStreamClient.open("http://127.0.0.1:\(fanoutPort)/events?topic=\(sessionTopic)")
            try await page.expect(
                "document.querySelector('#detail-viewing').textContent === '2 viewing'", within: 8, "another viewer shows live")
            try await page.expect(
                "(document.querySelector('.grid-day-label[data-day=\"\(firstDay)\"] .viewing') || {}).textContent === '1 viewing'",
                within: 8, "the day shows its viewers")
            otherViewer.close()
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
                (try? await bookings.sessionRow(sessionID)).map { $0.booked == 12 && $0.held == 0 } == true
            }
            try await page.expect("document.querySelector('#my-line').hidden", within: 3, "an accepted offer leaves the line")

            // Month view, then a course filter.
            let month = try await TestHTTP.send(.GET, routerURL + "/api/v1/calendar?view=month&date=\(firstDay)")
            let monthEntries = (month.json["entries"] as? [[String: any Sendable]]) ?? []
            let monthCount = monthEntries.count
            let perDay = Dictionary(grouping: monthEntries) { $0["date"] as? String ?? "" }.mapValues(\.count)
            let shown = perDay.values.map { min($0, 4) }.reduce(0, +)
            #expect(perDay[firstDay] == 5)
            try await page.browser.evaluate("location.hash = 'view=month&date=\(firstDay)'; true")
            try await page.expect(
                "document.querySelectorAll('.calendar.month .session').length === \(shown)", within: 5,
                "the month view shows at most four sessions a day")
            try await page.expect(
                "document.querySelector('.day-cell[data-day=\"\(firstDay)\"] .more')?.textContent === '+1 more'", within: 1,
                "a fifth session is behind +1 more")
            try await page.browser.screenshot(to: page.output.appendingPathComponent("month.png").path)
            try await Self.checkKeyboard(page: page, firstDay: firstDay)
            // +1 more opens the day: all five, on the time grid.
            try await page.browser.evaluate("document.querySelector('.day-cell[data-day=\"\(firstDay)\"] .more').click(); true")
            try await page.expect(
                "!!document.querySelector('.calendar.day.grid') && document.querySelectorAll('.day-column[data-day=\"\(firstDay)\"] .session').length === 5",
                within: 5, "+1 more opens the day with its five sessions")
            try await page.browser.evaluate("location.hash = 'view=month&date=\(firstDay)'; true")
            try await page.expect(
                "document.querySelectorAll('.calendar.month .session').length === \(shown)", within: 5, "back to the month")
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
            // The week's time grid becomes the same list: one column, no hour rail, every session there.
            try await page.browser.evaluate("location.hash = 'view=week&date=\(firstDay)'; true")
            try await page.expect(
                "!!document.querySelector('.calendar.week.grid') && getComputedStyle(document.querySelector('.grid-body')).gridTemplateColumns.split(' ').length === 1 && getComputedStyle(document.querySelector('.hours')).display === 'none' && document.querySelectorAll('.grid-body .session').length === \(expected.count)",
                within: 5, "a phone-width week is a list per day")
            try await page.browser.screenshot(to: page.output.appendingPathComponent("phone-week.png").path)
        }
        // The fan-out's outage above made the browser log refused streams; nothing may have thrown.
        let exceptions = page.browser.exceptions
        #expect(exceptions.isEmpty, "uncaught exceptions in the page: \(exceptions)")
    }

    /// `time` on `day` on the clock of `zone`, as an instant.
    static func instant(_ day: String, _ time: String, in zone: String) throws -> Date {
        let timeZone = try #require(VenueTime.zone(named: zone))
        let guess = try #require(RFC3339.date(from: "\(day)T\(time):00Z"))
        return guess.addingTimeInterval(-Double(timeZone.secondsFromGMT(for: guess)))
    }

    /// The week as a time grid: each session in its own day's column, placed by its local start
    /// (09:00 in London, 19:00 in New York), the two 09:00 sessions side by side, New York's
    /// named by its zone, London's (the visitor's own) not; and today's column marked with now.
    static func checkTimeGrid(page: CalendarPage, firstDay: String, newYorkID: String) async throws {
        try await page.expect("!!document.querySelector('.calendar.week.grid .grid-body .hours')", within: 2, "the week is a time grid")
        let placed =
            try await page.browser.evaluate(
                """
                (() => {
                  const column = document.querySelector('.day-column[data-day="\(firstDay)"]');
                  const hours = [...document.querySelectorAll('.hours .hour')].map(h => h.textContent);
                  const top = (chip) => parseFloat(chip.style.top);
                  const chips = [...column.querySelectorAll('.session')];
                  const nine = chips.filter(c => c.dataset.timeZone === 'Europe/London' && c.title.includes('09:00–12:30'));
                  const ny = column.querySelector('.session[data-session-id="\(newYorkID)"]');
                  const offDay = [...document.querySelectorAll('.grid-body .session')].filter(c => c.closest('.day-column') === null).length;
                  return JSON.stringify({
                    hours, chips: chips.length, offDay,
                    nineTops: nine.map(top), nineLefts: nine.map(c => c.style.left), nineWidth: nine.map(c => c.style.width),
                    nyTop: ny && top(ny), nyTitle: ny && ny.title, londonTitle: nine[0] && nine[0].title,
                  });
                })()
                """) as? String ?? "{}"
        let grid = try JSONSerialization.jsonObject(with: Data(placed.utf8)) as? [String: Any] ?? [:]
        let hours = grid["hours"] as? [String] ?? []
        let hourPixels = 44.0
        let first = try #require(hours.first.flatMap { Double($0.prefix(2)) }, "hour labels: \(hours)")
        #expect(grid["chips"] as? Int == 5 && grid["offDay"] as? Int == 0, "\(grid)")
        #expect((grid["nineTops"] as? [Double]) == [(9 - first) * hourPixels, (9 - first) * hourPixels], "09:00 sits at 09:00: \(grid)")
        #expect(Set(grid["nineLefts"] as? [String] ?? []).count == 2, "the two 09:00 sessions side by side: \(grid)")
        #expect((grid["nineWidth"] as? [String])?.allSatisfy { $0.hasPrefix("calc(50%") } == true, "\(grid)")
        #expect(grid["nyTop"] as? Double == (19 - first) * hourPixels, "New York's 19:00 sits at 19:00: \(grid)")
        #expect((grid["nyTitle"] as? String)?.contains("19:00–21:00 EST") == true, "\(grid)")
        #expect((grid["londonTitle"] as? String)?.contains("GMT") == false, "the visitor's own zone is not named: \(grid)")
        try await page.browser.screenshot(to: page.output.appendingPathComponent("week.png").path)

        // Today's week: the current time is marked in today's column, where it is now in London.
        let today = try #require(try await page.browser.evaluate("todayIn('Europe/London')") as? String)
        _ = try await page.browser.evaluate("location.hash = 'view=week&date=\(today)'; true")
        try await page.expect(
            """
            (() => {
              const line = document.querySelector('.day-column[data-day="\(today)"] .now-line');
              if (!line) return false;
              const first = Number(document.querySelector('.hours .hour').textContent.slice(0, 2));
              const expected = (minutesNowIn('Europe/London') - first * 60) / 60 * 44;
              return Math.abs(parseFloat(line.style.top) - expected) <= 44 && document.querySelectorAll('.now-line').length === 1;
            })()
            """, within: 5, "the current time is marked on today")
        _ = try await page.browser.evaluate("location.hash = 'view=week&date=\(firstDay)'; true")
        try await page.expect(
            "document.querySelectorAll('.day-column[data-day=\"\(firstDay)\"] .session').length === 5", within: 5, "back to the first week")
    }

    /// Keyboard: a day takes focus, the arrows move it, Enter goes into its sessions and Escape back out.
    static func checkKeyboard(page: CalendarPage, firstDay: String) async throws {
        func key(_ name: String) -> String {
            "document.activeElement.dispatchEvent(new KeyboardEvent('keydown', { key: '\(name)', bubbles: true })); true"
        }
        _ = try await page.browser.evaluate("document.querySelector('.day-cell[data-day=\"\(firstDay)\"]').focus(); true")
        try await page.expect("document.activeElement.dataset.day === '\(firstDay)'", within: 1, "a day takes the focus")
        _ = try await page.browser.evaluate(key("ArrowRight"))
        let next = try #require(try await page.browser.evaluate("addDays('\(firstDay)', 1)") as? String)
        try await page.expect("document.activeElement.dataset.day === '\(next)'", within: 2, "ArrowRight moves to the next day")
        _ = try await page.browser.evaluate(key("ArrowLeft"))
        try await page.expect("document.activeElement.dataset.day === '\(firstDay)'", within: 2, "ArrowLeft moves back")
        _ = try await page.browser.evaluate(key("Enter"))
        try await page.expect(
            "document.activeElement.classList.contains('session') && document.activeElement.closest('[data-day]').dataset.day === '\(firstDay)'",
            within: 1, "Enter goes to the day's first session")
        _ = try await page.browser.evaluate(key("ArrowDown"))
        try await page.expect(
            "document.activeElement.classList.contains('session') && document.activeElement !== document.querySelector('.day-cell[data-day=\"\(firstDay)\"] .session')",
            within: 1, "ArrowDown goes to the next session")
        _ = try await page.browser.evaluate(key("Escape"))
        try await page.expect("document.activeElement.dataset.day === '\(firstDay)'", within: 1, "Escape goes back to the day")
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
