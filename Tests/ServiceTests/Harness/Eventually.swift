import TestSupport
import Testing

// Waiting for a condition, and expecting one to come true.
//
// Never write a closure inside `#expect(…)` or `#require(…)` together with `await`, as in
// `#expect(await eventually { … })`: Swift 6.3.1 can give such a closure, inside another
// closure, the same name as the next closure in that body, and one of the two then runs in
// place of the other. A test had its wait run an earlier, already-true condition and pass
// without checking anything. `expectEventually` records the expectation itself, so its
// closure is an ordinary one. `MacroClosureTests` fails on any such closure in `Tests/`.

/// Expects `condition` to come true within `seconds` (polled every 50 ms).
func expectEventually(
    within seconds: Double = 3, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: @Sendable () async throws -> Bool
) async rethrows {
    let cameTrue = try await eventually(within: seconds, condition)
    #expect(cameTrue, comment, sourceLocation: sourceLocation)
}
