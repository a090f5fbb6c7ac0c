import Foundation
import Hummingbird
import NIOCore

/// A service's OpenAPI document: the `openapi.yaml` in its bundle, served at `GET /openapi.yaml`.
public struct OpenAPIDocument: Sendable {
    public let yaml: String

    /// Reads `openapi.yaml` from `bundle`; a build without it is broken, so this stops the process.
    public init(bundle: Bundle) {
        guard let url = bundle.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else {
            preconditionFailure("openapi.yaml is missing from \(bundle.bundlePath): the build left out the service's resources")
        }
        yaml = text
    }
}

extension Router {
    /// Serves `document` at `GET /openapi.yaml`.
    public func addOpenAPIRoute(_ document: OpenAPIDocument) {
        get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(string: document.yaml)))
        }
    }
}
