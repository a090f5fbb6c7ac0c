import Foundation
import Shared
import TestSupport
import Testing

@testable import Availability
@testable import Bookings
@testable import Fanout
@testable import Router

/// `docs/configuration.md` lists exactly the variables each service reads, with the defaults
/// its configuration reader really uses.
@Suite struct ConfigurationDocumentTests {
    /// One row of the services table.
    struct DocumentedVariable {
        let name: String
        let services: Set<String>
        let defaultValue: String
    }

    static let allServices: Set<String> = ["bookings", "availability", "fanout", "router"]

    /// The rows of the table under "## The services".
    static func documentedVariables() throws -> [DocumentedVariable] {
        let url = PrivateCluster.repositoryRoot.appendingPathComponent("docs/configuration.md")
        let text = try String(contentsOf: url, encoding: .utf8)
        let section =
            try #require(text.components(separatedBy: "## The services").dropFirst().first)
            .components(separatedBy: "\n## ").first ?? ""
        var rows: [DocumentedVariable] = []
        for line in section.split(separator: "\n") where line.hasPrefix("| `VACANCY_") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let services: Set<String> =
                switch cells[2] {
                case "all": allServices
                case "database": ["bookings", "availability", "fanout"]
                default: Set(cells[2].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                }
            let defaultCell = cells[3]
            let defaultValue =
                defaultCell == "empty"
                ? "" : defaultCell.hasPrefix("`") ? defaultCell.trimmingCharacters(in: CharacterSet(charactersIn: "`")) : defaultCell
            rows.append(DocumentedVariable(name: name, services: services, defaultValue: defaultValue))
        }
        return rows
    }

    /// What each service's reader reads from an empty environment.
    static func readEntries() throws -> [String: [ConfigReader.Entry]] {
        var entries: [String: [ConfigReader.Entry]] = [:]
        var reader = ConfigReader(environment: [:])
        _ = try BookingsConfiguration(reader: &reader)
        entries["bookings"] = reader.entries
        reader = ConfigReader(environment: [:])
        _ = try AvailabilityConfiguration(reader: &reader)
        entries["availability"] = reader.entries
        reader = ConfigReader(environment: [:])
        _ = try FanoutConfiguration(reader: &reader)
        entries["fanout"] = reader.entries
        reader = ConfigReader(environment: [:])
        _ = try RouterConfiguration(reader: &reader)
        entries["router"] = reader.entries
        return entries
    }

    @Test func everyVariableAServiceReadsIsDocumentedForItWithItsDefault() throws {
        let documented = try Self.documentedVariables()
        #expect(documented.count > 40, "the table was found and read")
        #expect(Set(documented.map(\.name)).count == documented.count, "each variable has one row")
        for (service, entries) in try Self.readEntries() {
            let read = Set(entries.map(\.name))
            let listed = Set(documented.filter { $0.services.contains(service) }.map(\.name))
            #expect(read.subtracting(listed).isEmpty, "\(service) reads undocumented \(read.subtracting(listed).sorted())")
            #expect(listed.subtracting(read).isEmpty, "documented for \(service) but not read: \(listed.subtracting(read).sorted())")
            for entry in entries where !entry.isSecret {
                guard let row = documented.first(where: { $0.name == entry.name }) else { continue }
                #expect(row.defaultValue == entry.value, "\(service) \(entry.name): documented \(row.defaultValue), read \(entry.value)")
            }
        }
    }
}
