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

    /// A server configuration for the given names (DNS names or IP literals).
    public func serverConfiguration(names: [String] = ["localhost", "127.0.0.1"]) throws -> TLSConfiguration {
        let key = P256.Signing.PrivateKey()
        let certificate = try authority.issueLeaf(
            forNames: names.map(LeafSubject.init(host:)),
            publicKey: Certificate.PublicKey(key.publicKey),
            lifetime: 86_400
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        )
        configuration.applicationProtocols = ["http/1.1"]
        return configuration
    }
}
