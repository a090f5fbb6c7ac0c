import Foundation
import Shared

extension OpenAPIDocument {
    /// This service's `openapi.yaml`, from its resources.
    static let bookings = OpenAPIDocument(bundle: .module)
}
