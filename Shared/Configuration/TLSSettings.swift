import NIOSSL

/// A TLS port (HTTP/2 and HTTP/1.1 by ALPN), on when `VACANCY_TLS_CERT` and `VACANCY_TLS_KEY` name PEM files.
public struct TLSSettings: Sendable {
    public var port: Int
    public var certificatePath: String
    public var keyPath: String

    public init(port: Int, certificatePath: String, keyPath: String) {
        self.port = port
        self.certificatePath = certificatePath
        self.keyPath = keyPath
    }

    /// The settings the environment gives, nil without a certificate and key; `portVariable` is the service's own.
    public static func read(_ reader: inout ConfigReader, portVariable: String, defaultPort: Int) throws -> TLSSettings? {
        let certificate = reader.string("VACANCY_TLS_CERT", default: "")
        let key = reader.string("VACANCY_TLS_KEY", default: "")
        let port = try reader.int(portVariable, default: defaultPort, in: 0...65535)
        return certificate.isEmpty || key.isEmpty ? nil : TLSSettings(port: port, certificatePath: certificate, keyPath: key)
    }

    /// The server side of TLS with the certificate chain and key read from their files.
    public func serverConfiguration() throws -> TLSConfiguration {
        let certificates = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        return TLSConfiguration.makeServerConfiguration(certificateChain: certificates, privateKey: .privateKey(key))
    }
}
