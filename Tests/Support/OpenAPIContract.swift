import Foundation
import Shared
import Yams

/// An OpenAPI 3.1 or 3.2 document, and a check that a real response is one it describes:
/// the status is documented for the operation, the content type matches, and the body
/// validates against the schema (the JSON Schema keywords the documents use). A
/// `text/event-stream` body is read as Server-Sent Events and each item is checked against
/// the media type's `itemSchema` (OpenAPI 3.2), its JSON `data` against `contentSchema`.
public struct OpenAPIContract: Sendable {
    private let root: JSONValue

    public init(yaml: String) throws {
        let loaded = try Yams.load(yaml: yaml)
        root = Self.convert(loaded as Any)
    }

    /// Every way `body` departs from the document; empty when it conforms.
    public func violations(method: String, path: String, status: Int, contentType: String, body: Data) -> [String] {
        let path = String(path.split(separator: "?", maxSplits: 1).first ?? "")
        guard case .object(let paths)? = root["paths"] else { return ["document has no paths"] }
        guard let template = paths.keys.first(where: { Self.matches(template: $0, path: path) }) else {
            return ["\(method) \(path): path not documented"]
        }
        guard let operation = paths[template]?[method.lowercased()] else {
            return ["\(method) \(template): operation not documented"]
        }
        guard let documented = operation["responses"]?[String(status)] else {
            return ["\(method) \(template): status \(status) not documented"]
        }
        let response = resolve(documented)
        guard case .object(let content)? = response["content"] else {
            return body.isEmpty ? [] : ["\(method) \(template) \(status): body sent where none is documented"]
        }
        let media = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        if media == "text/event-stream", let itemSchema = content[media]?["itemSchema"] {
            let items = Self.eventStreamItems(String(decoding: body, as: UTF8.self))
            guard !items.isEmpty else { return ["\(method) \(template) \(status): no event-stream items"] }
            return items.enumerated().flatMap { index, item in
                validate(item, against: itemSchema, at: "\(method) \(template) \(status) item \(index)")
            }
        }
        guard let mediaType = content[media], let schema = mediaType["schema"] else {
            return ["\(method) \(template) \(status): content type \(media) not documented (\(content.keys.sorted()))"]
        }
        guard let value = try? JSONCoding.decoder.decode(JSONValue.self, from: body) else {
            return ["\(method) \(template) \(status): body is not JSON"]
        }
        return validate(value, against: schema, at: "\(method) \(template) \(status) body")
    }

    func resolve(_ schema: JSONValue) -> JSONValue {
        guard case .string(let ref)? = schema["$ref"], ref.hasPrefix("#/") else { return schema }
        var node = root
        for part in ref.dropFirst(2).split(separator: "/") {
            guard let next = node[String(part)] else { return .null }
            node = next
        }
        return resolve(node)
    }

    func validate(_ value: JSONValue, against rawSchema: JSONValue, at location: String) -> [String] {
        let schema = resolve(rawSchema)
        var problems: [String] = []
        if let type = schema["type"] {
            let allowed: [String]
            switch type {
            case .string(let one): allowed = [one]
            case .array(let many): allowed = many.compactMap { if case .string(let s) = $0 { s } else { nil } }
            default: allowed = []
            }
            if !allowed.contains(where: { Self.hasType(value, $0) }) {
                return ["\(location): expected \(allowed.joined(separator: "|")), got \(value)"]
            }
        }
        if case .array(let options)? = schema["enum"], !options.contains(value) {
            problems.append("\(location): \(value) not in \(options)")
        }
        if let constant = schema["const"], constant != value {
            problems.append("\(location): \(value) is not \(constant)")
        }
        if case .array(let alternatives)? = schema["oneOf"] {
            let failures = alternatives.map { validate(value, against: $0, at: location) }
            let matching = failures.filter(\.isEmpty).count
            if matching != 1 {
                let closest = failures.min { $0.count < $1.count } ?? []
                problems.append("\(location): matches \(matching) of the \(alternatives.count) oneOf schemas, not one")
                if matching == 0 { problems += closest }
            }
        }
        switch value {
        case .string(let text):
            if schema["contentMediaType"] == .string("application/json"), let contentSchema = schema["contentSchema"] {
                if let decoded = try? JSONCoding.decoder.decode(JSONValue.self, from: Data(text.utf8)) {
                    problems += validate(decoded, against: contentSchema, at: "\(location) (JSON)")
                } else {
                    problems.append("\(location): not JSON: \(text.prefix(80))")
                }
            }
            if case .string(let format)? = schema["format"], !Self.conforms(text, format: format) {
                problems.append("\(location): \"\(text)\" is not a \(format)")
            }
            if case .int(let min)? = schema["minLength"], text.count < min { problems.append("\(location): shorter than \(min)") }
            if case .int(let max)? = schema["maxLength"], text.count > max { problems.append("\(location): longer than \(max)") }
            if case .string(let pattern)? = schema["pattern"], text.range(of: pattern, options: .regularExpression) == nil {
                problems.append("\(location): does not match \(pattern)")
            }
        case .int(let number):
            if case .int(let min)? = schema["minimum"], number < min { problems.append("\(location): \(number) < \(min)") }
            if case .int(let max)? = schema["maximum"], number > max { problems.append("\(location): \(number) > \(max)") }
        case .array(let items):
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() {
                    problems += validate(item, against: itemSchema, at: "\(location)[\(index)]")
                }
            }
        case .object(let fields):
            if case .array(let required)? = schema["required"] {
                for case .string(let name) in required where fields[name] == nil {
                    problems.append("\(location): missing required \(name)")
                }
            }
            let properties: [String: JSONValue]
            if case .object(let declared)? = schema["properties"] { properties = declared } else { properties = [:] }
            for (name, field) in fields {
                if let propertySchema = properties[name] {
                    problems += validate(field, against: propertySchema, at: "\(location).\(name)")
                } else if schema["additionalProperties"] == .bool(false) {
                    problems.append("\(location): undocumented property \(name)")
                } else if let extra = schema["additionalProperties"], case .object = extra {
                    problems += validate(field, against: extra, at: "\(location).\(name)")
                }
            }
        default:
            break
        }
        return problems
    }

    /// The items of a Server-Sent Events text as OpenAPI 3.2 sees them: one object per event
    /// (`id`, `event`, `data`, `retry`, each only when sent); comments are not items.
    public static func eventStreamItems(_ text: String) -> [JSONValue] {
        var items: [JSONValue] = []
        let normalised = text.replacingOccurrences(of: "\r\n", with: "\n")
        for block in normalised.components(separatedBy: "\n\n") {
            var fields: [String: JSONValue] = [:]
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix(":") {
                let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                var value = parts.count > 1 ? String(parts[1]) : ""
                if value.hasPrefix(" ") { value.removeFirst() }
                switch name {
                case "data": data.append(value)
                case "retry": fields["retry"] = Int(value).map(JSONValue.int) ?? .string(value)
                default: fields[name] = .string(value)
                }
            }
            if !data.isEmpty { fields["data"] = .string(data.joined(separator: "\n")) }
            if !fields.isEmpty { items.append(.object(fields)) }
        }
        return items
    }

    static func hasType(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("integer", .int), ("number", .int), ("number", .double),
            ("string", .string), ("array", .array), ("object", .object):
            return true
        default:
            return false
        }
    }

    static func conforms(_ text: String, format: String) -> Bool {
        switch format {
        case "uuid": return UUID(uuidString: text) != nil && text == text.lowercased()
        case "date-time": return RFC3339.date(from: text) != nil
        case "date": return CalendarDay(text) != nil
        case "uri": return URL(string: text)?.scheme != nil
        default: return true
        }
    }

    static func matches(template: String, path: String) -> Bool {
        let templateParts = template.split(separator: "/", omittingEmptySubsequences: false)
        let pathParts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard templateParts.count == pathParts.count else { return false }
        return zip(templateParts, pathParts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
    }

    static func convert(_ value: Any) -> JSONValue {
        switch value {
        case let dictionary as [String: Any]: return .object(dictionary.mapValues(convert))
        case let dictionary as [AnyHashable: Any]:
            return .object(Dictionary(uniqueKeysWithValues: dictionary.map { ("\($0.key)", convert($0.value)) }))
        case let array as [Any]: return .array(array.map(convert))
        case let bool as Bool: return .bool(bool)
        case let int as Int: return .int(int)
        case let double as Double: return .double(double)
        case let string as String: return .string(string)
        default: return .null
        }
    }
}

extension JSONValue {
    /// The member `key` of an object, nil for anything else.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }
}
