/// A service's configuration, read from `VACANCY_*` environment variables: the reader is the
/// one place its defaults are written.
public protocol ServiceConfiguration: Sendable {
    init(reader: inout ConfigReader) throws
    var common: CommonConfiguration { get set }
}

extension ServiceConfiguration {
    /// The configuration `environment` gives (defaults for the rest), with `common` in place
    /// of the common settings: for a service assembled in-process, as the tests do.
    public init(common: CommonConfiguration, environment: [String: String] = [:]) throws {
        var reader = ConfigReader(environment: environment)
        try self.init(reader: &reader)
        self.common = common
    }
}
