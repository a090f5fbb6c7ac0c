import Hummingbird
import HummingbirdCore

extension URI {
    /// The query parameters with `+` read as a space, as HTML forms and `URLSearchParams`
    /// encode it (Hummingbird's `queryParameters` decodes only `%20`); a literal plus
    /// arrives as `%2B` and stays a plus.
    public var formQueryParameters: Parameters {
        guard let query, query.contains("+") else { return queryParameters }
        return URI("/?" + query.replacingOccurrences(of: "+", with: "%20")).queryParameters
    }
}
