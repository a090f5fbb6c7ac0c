import HTTPTypes
import Hummingbird
import Shared

/// The API keys callers present as `Authorization: Bearer <key>`, each with a caller name.
struct APIKeys: Sendable {
    private let keys: [(name: String, key: [UInt8])]

    init(parsing text: String) throws {
        var keys: [(String, [UInt8])] = []
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            // Any non-empty key is taken (a local `me:k` must work); choosing strong keys is the operator's call.
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ConfigReader.InvalidValue(
                    name: "VACANCY_API_KEYS", value: "(hidden)", expected: "name:key pairs separated by commas, neither part empty")
            }
            keys.append((parts[0], Array(parts[1].utf8)))
        }
        guard !keys.isEmpty else {
            throw ConfigReader.InvalidValue(name: "VACANCY_API_KEYS", value: "", expected: "at least one name:key pair")
        }
        self.keys = keys
    }

    /// The caller name for `presented`, comparing in constant time per key.
    func caller(for presented: Substring) -> String? {
        let bytes = Array(presented.utf8)
        var match: String?
        for entry in keys where Self.constantTimeEquals(entry.key, bytes) {
            match = entry.name
        }
        return match
    }

    private static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// Lets a request through only with a known API key, recording the caller's name.
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = VacancyRequestContext
    let keys: APIKeys

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw Self.unauthorized("Send an API key as `Authorization: Bearer <key>`.", error: nil)
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer ", let caller = keys.caller(for: header.dropFirst(7)) else {
            throw Self.unauthorized("The API key is not valid.", error: "invalid_token")
        }
        var context = context
        context.caller = caller
        context.logger[metadataKey: "caller"] = .string(caller)
        return try await next(request, context)
    }

    static func unauthorized(_ detail: String, error: String?) -> Problem {
        let challenge = error.map { "Bearer realm=\"vacancy\", error=\"\($0)\"" } ?? "Bearer realm=\"vacancy\""
        return Problem(
            "unauthorized", title: "Unauthorized", status: .unauthorized, detail: detail,
            headers: [.wwwAuthenticate: challenge]
        )
    }
}
