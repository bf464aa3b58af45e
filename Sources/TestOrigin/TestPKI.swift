import CertificateAuthority
import Crypto
import NIOSSL
import SwiftASN1
import X509

/// A test CA and a TLS server configuration for `localhost`/127.0.0.1 signed by it: the "real
/// world" origin PKI that the proxy must verify through `--upstream-ca-file`.
public struct TestPKI: Sendable {
    public let authority: CertificateAuthority

    public init(commonName: String = "passsage test origin CA") throws {
        authority = try CertificateAuthority.generate(commonName: commonName, organization: "passsage tests")
    }

    public var caPEM: String { authority.certificatePEM }

    /// A leaf certificate and its private key, PEM, for the given names (DNS names or IP
    /// literals): for servers that are not ours (a registry) to present.
    public func leafPEM(names: [String]) throws -> (certificate: String, key: String) {
        let key = P256.Signing.PrivateKey()
        let certificate = try authority.issueLeaf(
            forNames: names.map(LeafSubject.init(host:)),
            publicKey: Certificate.PublicKey(key.publicKey),
            lifetime: 86_400
        )
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// A server configuration for the given names (DNS names or IP literals).
    public func serverConfiguration(names: [String] = ["localhost", "127.0.0.1"]) throws -> TLSConfiguration {
        let leaf = try leafPEM(names: names)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(leaf.certificate.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(leaf.key.utf8), format: .pem))
        )
        configuration.applicationProtocols = ["http/1.1"]
        return configuration
    }
}
