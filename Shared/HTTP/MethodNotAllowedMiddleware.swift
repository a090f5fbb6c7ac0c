import HTTPTypes
import Hummingbird

/// Answers a request for a path the router has, but not for the request's method, with
/// 405 and `Allow` (Hummingbird's router answers 404 for both). Made from the finished
/// router's routes and added last, so it only ever sees requests no route took.
public struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: [(path: [RouterPath.Element], methods: [HTTPRequest.Method])]

    public init(routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: (path: [RouterPath.Element], methods: [HTTPRequest.Method])] = [:]
        for route in routes {
            byPath[route.path.description, default: (route.path.components, [])].methods.append(route.method)
        }
        self.routes = byPath.values.map { ($0.path, $0.methods) }
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = allowedMethods(for: request.uri.path)
            guard !allowed.isEmpty else { throw error }
            throw Problem.methodNotAllowed(request.method, path: request.uri.path, allowed: allowed)
        }
    }

    /// The methods of every route whose path matches `path`, in a stable order.
    func allowedMethods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: Set<HTTPRequest.Method> = []
        for route in routes where Self.matches(route.path, segments) { allowed.formUnion(route.methods) }
        return allowed.sorted { $0.rawValue < $1.rawValue }
    }

    static func matches(_ pattern: [RouterPath.Element], _ segments: [Substring]) -> Bool {
        for (index, element) in pattern.enumerated() {
            if element.description == "**" { return true }
            guard index < segments.count, element ~= segments[index] else { return false }
        }
        return pattern.count == segments.count
    }
}

extension Problem {
    public static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> Problem {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return Problem(
            "method-not-allowed",
            title: "Method not allowed",
            status: .methodNotAllowed,
            detail: "\(path) does not take \(method.rawValue); it takes \(list).",
            headers: [.allow: list]
        )
    }
}
