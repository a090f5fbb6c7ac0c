import Foundation
import PostgresNIO
import TestSupport
import Testing

@testable import Availability

/// `SeatRules` is the one definition of a session's level and of high demand; these pin it on
/// real rows, both as literal thresholds and as the bound parameters of a prepared statement.
@Suite(.timeLimit(.minutes(2))) struct SeatRulesTests {
    struct Case: Sendable, CustomStringConvertible {
        var status = "scheduled"
        var startsInHours: Double = 24
        var capacity = 10
        var booked = 0
        var held = 0
        var level: String
        var highDemand = false
        var description: String { "\(status) in \(startsInHours) h, \(booked)+\(held)/\(capacity)" }
    }

    /// With 3 seats as `low`, 80 % and 48 hours as high demand.
    static let cases: [Case] = [
        Case(level: "open"),
        Case(booked: 6, held: 0, level: "open"),
        Case(booked: 7, level: "low"),
        Case(booked: 5, held: 2, level: "low"),
        Case(booked: 9, held: 1, level: "full", highDemand: true),
        Case(booked: 8, level: "low", highDemand: false),
        Case(booked: 8, held: 1, level: "low", highDemand: true),
        Case(startsInHours: 47, booked: 9, level: "low", highDemand: true),
        Case(startsInHours: 49, booked: 9, level: "low", highDemand: false),
        Case(capacity: 0, level: "full"),
        Case(booked: 12, level: "full", highDemand: true),
        Case(startsInHours: -1, booked: 9, level: "closed"),
        Case(status: "cancelled", booked: 9, level: "closed"),
        Case(status: "completed", level: "closed"),
    ]

    @Test func levelsAndHighDemandAsRowsAreJudged() async throws {
        try await TestDatabase.with { db in
            let rules = SeatRules(lowSeats: 3, highDemand: HighDemandRule(percent: 80, window: .seconds(48 * 3600)))
            for rule in Self.cases {
                let rows = try await db.database.query(
                    """
                    WITH s AS (
                        SELECT \(rule.status)::text AS status, now() + make_interval(secs => \(rule.startsInHours * 3600)) AS starts_at,
                               \(rule.capacity)::int AS capacity, \(rule.booked)::int AS booked, \(rule.held)::int AS held
                    )
                    SELECT \(unescaped: rules.level(of: "s")), \(unescaped: rules.isHighDemand(of: "s")),
                           \(unescaped: SeatRules.level(of: "s", lowSeats: "$6")), \(unescaped: SeatRules.isHighDemand(of: "s", percent: "$7", windowSeconds: "$8"))
                    FROM s, (SELECT \(rules.lowSeats)::int, \(rules.highDemand.percent)::int, \(rules.highDemand.windowSeconds)::int) AS thresholds
                    """
                )
                let (level, highDemand, boundLevel, boundHighDemand) = try rows[0].decode((String, Bool, String, Bool).self)
                #expect(level == rule.level, "\(rule)")
                #expect(highDemand == rule.highDemand, "\(rule)")
                #expect(boundLevel == level && boundHighDemand == highDemand, "bound thresholds judge as literal ones: \(rule)")
            }
        }
    }
}
