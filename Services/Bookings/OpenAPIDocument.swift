import Foundation

/// The OpenAPI document served at `/openapi.yaml`, read from the `openapi.yaml` resource.
enum OpenAPIDocument {
    static let yaml: String = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
            let text = try? String(contentsOf: url, encoding: .utf8)
        else { return "openapi: 3.1.0\ninfo: {title: Vacancy bookings, version: unknown}\npaths: {}\n" }
        return text
    }()
}
