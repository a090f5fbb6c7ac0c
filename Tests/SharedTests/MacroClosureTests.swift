import Foundation
import Testing

/// Swift 6.3.1 can miscompile a closure written inside `#expect(…)` or `#require(…)` with
/// `await`, when the expectation itself sits inside a closure: the closure gets the same
/// name as the next closure in that body, and one runs in place of the other. A router test
/// passed that way without checking anything. Such closures are written with
/// `expectEventually` (Tests/ServiceTests/Harness/Eventually.swift) instead; this test
/// keeps them out of every test file.
@Suite struct MacroClosureTests {
    static let testsRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    @Test func noExpectationHoldsAnAwaitedClosure() throws {
        let files = try #require(FileManager.default.enumerator(at: Self.testsRoot, includingPropertiesForKeys: nil))
        var checked = 0
        var offenders: [String] = []
        // This file's own examples sit in a string literal, which the scan does not tell apart.
        for case let url as URL in files where url.pathExtension == "swift" && url.lastPathComponent != "MacroClosureTests.swift" {
            let source = try String(contentsOf: url, encoding: .utf8)
            checked += 1
            for (line, argument) in Self.expectationArguments(in: source) where Self.holdsAwaitedClosure(argument) {
                offenders.append("\(url.lastPathComponent):\(line)")
            }
        }
        #expect(checked > 20, "the test files were found (\(checked))")
        #expect(offenders.isEmpty, "closures awaited inside #expect/#require: \(offenders)")
    }

    @Test func theCheckFindsWhatItLooksFor() {
        let source = """
            #expect(await eventually { ready })
            #expect(try await eventually(within: 3) {
                try await db.changesDrained()
            }, "drained")
            #expect(streams.allSatisfy { $0.isOpen })
            #expect(try await metric(#"subscribers{transport="h2"}"#) == 1)
            // #expect(await eventually { commented out })
            """
        let found = Self.expectationArguments(in: source).filter { Self.holdsAwaitedClosure($0.argument) }.map(\.line)
        #expect(found == [1, 2])
    }

    /// Each `#expect(` / `#require(` outside comments, with its line and its argument text.
    static func expectationArguments(in source: String) -> [(line: Int, argument: String)] {
        let characters = Array(source)
        var results: [(Int, String)] = []
        var line = 1
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character == "\n" { line += 1 }
            if character == "/", index + 1 < characters.count, characters[index + 1] == "/" {
                while index < characters.count, characters[index] != "\n" { index += 1 }
                continue
            }
            let rest = characters[index...].prefix(9)
            if rest.starts(with: "#expect(") || rest.starts(with: "#require(") {
                var end = index + (rest.starts(with: "#expect(") ? 8 : 9)
                let start = end
                var depth = 1
                var inString = false
                while end < characters.count, depth > 0 {
                    switch characters[end] {
                    case "\"" where characters[end - 1] != "\\": inString.toggle()
                    case "(" where !inString: depth += 1
                    case ")" where !inString: depth -= 1
                    default: break
                    }
                    end += 1
                }
                results.append((line, String(characters[start..<max(start, end - 1)])))
            }
            index += 1
        }
        return results
    }

    /// Whether `argument`, without its string literals, awaits something and holds a closure.
    static func holdsAwaitedClosure(_ argument: String) -> Bool {
        let code = argument.replacingOccurrences(of: ##"#?"(\\.|[^"\\])*"#?"##, with: "\"\"", options: .regularExpression)
        return code.contains("await") && code.contains("{")
    }
}
