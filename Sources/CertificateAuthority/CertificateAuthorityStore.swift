#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SwiftASN1
import X509

/// Loads the CA from explicit PEM inputs or from a directory in mitmproxy's layout, generating one
/// on first start.
///
/// The file names are mitmproxy's, so clients that already trust a mitmproxy (or original passsage)
/// CA keep working when the directory is reused:
/// - `mitmproxy-ca.pem`: private key followed by certificate (mode 0600);
/// - `mitmproxy-ca-cert.pem`: the certificate alone.
public enum CertificateAuthorityStore {
    public static let bundleFileName = "mitmproxy-ca.pem"
    public static let certificateFileName = "mitmproxy-ca-cert.pem"

    public enum Origin: Equatable, Sendable {
        case explicit
        case loaded(directory: String)
        case generated(directory: String)
    }

    /// Resolves the CA the way the CLI documents it.
    ///
    /// - Parameters:
    ///   - bundle: `--mitm-ca`: PEM text or a path; holds the key and the certificate, or the key
    ///     alone when `certificate` is given.
    ///   - certificate: `--mitm-ca-cert`: PEM text or a path; the certificate alone. Only valid with a
    ///     bundle, and it must be the bundle's certificate (or match its key).
    ///   - directory: `--ca-dir`, used when no bundle is given.
    public static func resolve(
        bundle: String?,
        certificate: String?,
        directory: String
    ) throws -> (CertificateAuthority, Origin) {
        if let bundle {
            let bundlePEM = try PEMInput.read(bundle)
            guard let certificate else { return (try parseBundle(bundlePEM), .explicit) }
            let separate = try Certificate(pemEncoded: firstBlock(in: try PEMInput.read(certificate), label: "CERTIFICATE"))
            // A key alone with the certificate beside it: a kubernetes.io/tls Secret's tls.key
            // and tls.crt (cert-manager's output), mounted as two files.
            guard bundlePEM.contains("CERTIFICATE-----") else {
                let key = try Certificate.PrivateKey(pemEncoded: firstBlock(in: bundlePEM, label: "PRIVATE KEY"))
                return (try CertificateAuthority(certificate: separate, privateKey: key), .explicit)
            }
            let authority = try parseBundle(bundlePEM)
            guard separate == authority.certificate else {
                throw CertificateAuthorityError.keyDoesNotMatchCertificate
            }
            return (authority, .explicit)
        }
        if certificate != nil {
            throw CertificateAuthorityError.missingPEMBlock("private key (--mitm-ca-cert needs --mitm-ca)")
        }
        let bundlePath = directory + "/" + bundleFileName
        if FileManager.default.fileExists(atPath: bundlePath) {
            let authority = try parseBundle(try readFile(bundlePath))
            return (authority, .loaded(directory: directory))
        }
        let authority = try CertificateAuthority.generate()
        try save(authority, to: directory)
        return (authority, .generated(directory: directory))
    }

    /// What `resolve` would do, writing nothing: a given or stored CA is read and checked as it
    /// would be; a missing one is `.generated` (it would be, on start).
    public static func check(bundle: String?, certificate: String?, directory: String) throws -> Origin {
        if bundle == nil, certificate == nil, !FileManager.default.fileExists(atPath: directory + "/" + bundleFileName) {
            return .generated(directory: directory)
        }
        return try resolve(bundle: bundle, certificate: certificate, directory: directory).1
    }

    /// Parses a PEM bundle that holds one private key and one certificate, in any order.
    public static func parseBundle(_ pem: String) throws -> CertificateAuthority {
        let keyPEM = try firstBlock(in: pem, label: "PRIVATE KEY")
        let certificatePEM = try firstBlock(in: pem, label: "CERTIFICATE")
        let key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        let certificate = try Certificate(pemEncoded: certificatePEM)
        return try CertificateAuthority(certificate: certificate, privateKey: key)
    }

    /// Writes both files; the key file is created with mode 0600 and replaced atomically.
    public static func save(_ authority: CertificateAuthority, to directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CertificateAuthorityError.unwritable(path: directory, reason: "\(error)")
        }
        let keyPEM = try authority.privateKey.serializeAsPEM().pemString
        try writeAtomically(keyPEM + "\n" + authority.certificatePEM + "\n", to: directory + "/" + bundleFileName, mode: 0o600)
        try writeAtomically(authority.certificatePEM + "\n", to: directory + "/" + certificateFileName, mode: 0o644)
    }

    /// Returns the first PEM block whose label ends with `label` ("PRIVATE KEY" matches the PKCS#8,
    /// SEC1 "EC PRIVATE KEY" and PKCS#1 "RSA PRIVATE KEY" forms).
    static func firstBlock(in pem: String, label: String) throws -> String {
        var collecting: (label: Substring, lines: [Substring])?
        for rawLine in pem.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.drop(while: { $0 == " " || $0 == "\t" })
            if var block = collecting {
                block.lines.append(line)
                if line.hasPrefix("-----END \(block.label)-----") {
                    return block.lines.joined(separator: "\n") + "\n"
                }
                collecting = block
            } else if line.hasPrefix("-----BEGIN "), line.hasSuffix("-----") {
                let blockLabel = line.dropFirst("-----BEGIN ".count).dropLast(5)
                if blockLabel.hasSuffix(label) {
                    collecting = (blockLabel, [line])
                }
            }
        }
        throw CertificateAuthorityError.missingPEMBlock(label.lowercased())
    }

    static func readFile(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CertificateAuthorityError.unreadable(path: path, reason: "no such file or not readable")
        }
        return String(decoding: data, as: UTF8.self)
    }

    private static func writeAtomically(_ text: String, to path: String, mode: mode_t) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else {
            throw CertificateAuthorityError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(temporary)
                throw CertificateAuthorityError.unwritable(path: path, reason: reason)
            }
            written += n
        }
        fsync(fd)
        close(fd)
        // open() applies the umask; the key must end up 0600 regardless.
        chmod(temporary, mode)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CertificateAuthorityError.unwritable(path: path, reason: reason)
        }
    }
}

/// A CLI value that is either inline PEM text or a path to a PEM file (for Kubernetes secrets
/// passed through environment variables).
public enum PEMInput {
    public static func read(_ value: String) throws -> String {
        let trimmed = value.drop(while: { $0.isWhitespace })
        if trimmed.hasPrefix("-----BEGIN") {
            return value
        }
        return try CertificateAuthorityStore.readFile(expandTilde(value))
    }

    static func expandTilde(_ path: String) -> String {
        guard path == "~" || path.hasPrefix("~/") else { return path }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? ""
        return home + path.dropFirst()
    }
}
