import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftASN1
import X509

/// A certificate authority that signs TLS leaf certificates for intercepted hosts.
///
/// The CA may use a P-256 or an RSA key (an existing mitmproxy CA is usually RSA); leaves are always
/// P-256, because minting and handshakes with P-256 are an order of magnitude cheaper.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey
    /// The CA certificate as PEM, as served on `mitm.it/cert/pem` and embedded in `proxy-env.sh`.
    public let certificatePEM: String
    /// The CA certificate as DER, as served on `mitm.it/cert/cer`.
    public let certificateDER: [UInt8]

    public init(certificate: Certificate, privateKey: Certificate.PrivateKey) throws {
        guard certificate.publicKey == privateKey.publicKey else {
            throw CertificateAuthorityError.keyDoesNotMatchCertificate
        }
        guard let constraints = try certificate.extensions.basicConstraints,
              case .isCertificateAuthority = constraints
        else {
            throw CertificateAuthorityError.notACertificateAuthority
        }
        self.certificate = certificate
        self.privateKey = privateKey
        self.certificatePEM = try certificate.serializeAsPEM().pemString
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        self.certificateDER = serializer.serializedBytes
    }

    /// Generates a new self-signed P-256 CA, valid for ten years.
    public static func generate(
        commonName: String = "passsage",
        organization: String = "passsage",
        now: Date = Date()
    ) throws -> CertificateAuthority {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            CommonName(commonName)
            OrganizationName(organization)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-2 * 86_400),
            notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key
        )
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Signs a leaf certificate for `subject` over `publicKey`.
    ///
    /// Validity starts two days back (clients with skewed clocks) and never outlives the CA.
    public func issueLeaf(
        for subject: LeafSubject,
        publicKey: Certificate.PublicKey,
        lifetime: TimeInterval,
        now: Date = Date()
    ) throws -> Certificate {
        try issueLeaf(forNames: [subject], publicKey: publicKey, lifetime: lifetime, now: now)
    }

    /// Signs a leaf whose SAN lists every name in `names`; the first one is the common name.
    public func issueLeaf(
        forNames names: [LeafSubject],
        publicKey: Certificate.PublicKey,
        lifetime: TimeInterval,
        now: Date = Date()
    ) throws -> Certificate {
        precondition(!names.isEmpty, "a leaf needs at least one name")
        let subject = names[0]
        let notAfter = min(now.addingTimeInterval(lifetime), certificate.notValidAfter)
        let subjectName = try DistinguishedName {
            // X.520 caps CommonName at 64 characters; the SAN is what clients check anyway.
            if subject.commonName.utf8.count <= 64 {
                CommonName(subject.commonName)
            }
            OrganizationName("passsage")
        }
        let issuerKeyIdentifier = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        return try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-2 * 86_400),
            notValidAfter: notAfter,
            issuer: certificate.subject,
            subject: subjectName,
            signatureAlgorithm: signatureAlgorithm,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names.map(\.generalName))
                AuthorityKeyIdentifier(keyIdentifier: issuerKeyIdentifier)
            },
            issuerPrivateKey: privateKey
        )
    }

    /// The signature algorithm follows the issuer's key type, not the leaf's.
    private var signatureAlgorithm: Certificate.SignatureAlgorithm {
        privateKey.supportedSignatureAlgorithms.contains(.ecdsaWithSHA256)
            ? .ecdsaWithSHA256 : .sha256WithRSAEncryption
    }
}

public enum CertificateAuthorityError: Error, CustomStringConvertible, Equatable {
    case keyDoesNotMatchCertificate
    case notACertificateAuthority
    case missingPEMBlock(String)
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case .keyDoesNotMatchCertificate:
            return "the CA private key does not match the CA certificate"
        case .notACertificateAuthority:
            return "the certificate is not a CA certificate (basicConstraints CA:TRUE missing)"
        case .missingPEMBlock(let what):
            return "no \(what) found in the PEM input"
        case .unreadable(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .unwritable(let path, let reason):
            return "cannot write \(path): \(reason)"
        }
    }
}
