/// The `mitm.it` site: CA downloads, the onboarding script and an index page. Pure: it maps a path
/// to a response and does no I/O.
public struct OnboardingSite: Sendable {
    public static let hostName = "mitm.it"

    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var extraHeaders: [(String, String)]
        public var body: [UInt8]

        public static func == (lhs: Response, rhs: Response) -> Bool {
            lhs.status == rhs.status && lhs.contentType == rhs.contentType && lhs.body == rhs.body
                && lhs.extraHeaders.map { "\($0.0)=\($0.1)" } == rhs.extraHeaders.map { "\($0.0)=\($0.1)" }
        }
    }

    public let caCertificatePEM: String
    public let caCertificateDER: [UInt8]
    /// Hosts added to `NO_PROXY` by the script (`--no-proxy-extra`).
    public let noProxyExtra: [String]

    public init(caCertificatePEM: String, caCertificateDER: [UInt8], noProxyExtra: [String]) {
        self.caCertificatePEM = caCertificatePEM
        self.caCertificateDER = caCertificateDER
        self.noProxyExtra = noProxyExtra
    }

    /// Answers a request for `pathAndQuery`. `proxyURL` is what the onboarding script exports.
    /// Query strings are ignored, so `/proxy-env.sh?v=2` works.
    public func respond(method: String, pathAndQuery: String, proxyURL: String) -> Response {
        guard method == "GET" || method == "HEAD" else {
            return Response(status: 405, contentType: "text/plain; charset=utf-8",
                            extraHeaders: [("Allow", "GET, HEAD")], body: Array("method not allowed\n".utf8))
        }
        let path = pathAndQuery.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        switch path {
        case "/", "/index.html":
            return Response(status: 200, contentType: "text/html; charset=utf-8", extraHeaders: [],
                            body: Array(IndexPage.render(proxyURL: proxyURL).utf8))
        case "/cert/pem":
            return Response(status: 200, contentType: "application/x-x509-ca-cert",
                            extraHeaders: [("Content-Disposition", "attachment; filename=\"mitmproxy-ca-cert.pem\"")],
                            body: Array(caCertificatePEM.utf8))
        case "/cert/cer":
            return Response(status: 200, contentType: "application/x-x509-ca-cert",
                            extraHeaders: [("Content-Disposition", "attachment; filename=\"mitmproxy-ca-cert.cer\"")],
                            body: caCertificateDER)
        case "/proxy-env.sh", "/proxy-env":
            let script = ProxyEnvScript.render(
                proxyURL: proxyURL,
                noProxy: ProxyEnvScript.defaultNoProxy + noProxyExtra,
                caCertificatePEM: caCertificatePEM
            )
            return Response(status: 200, contentType: "text/plain; charset=utf-8", extraHeaders: [],
                            body: Array(script.utf8))
        default:
            return Response(status: 404, contentType: "text/plain; charset=utf-8", extraHeaders: [],
                            body: Array("not found; see http://mitm.it/\n".utf8))
        }
    }
}

enum IndexPage {
    static func render(proxyURL: String) -> String {
        let proxy = htmlEscape(proxyURL)
        return """
        <!doctype html>
        <html><head><meta charset="utf-8"><title>passsage: trust the proxy CA</title></head>
        <body style="font-family: sans-serif; max-width: 48em; margin: 2em auto">
        <h1>passsage</h1>
        <p>This caching proxy intercepts HTTPS. Clients must trust its certificate authority.</p>
        <h2>Any shell (Linux, macOS): one line</h2>
        <pre>. &lt;(curl -fsSL -x \(proxy) http://mitm.it/proxy-env.sh)</pre>
        <p>It installs the CA (system store when you are root or have password-less sudo, else a bundle in
        <code>~/.passsage/</code>) and exports <code>HTTP_PROXY</code>, <code>HTTPS_PROXY</code> and
        <code>NO_PROXY</code>. Set <code>PASSSAGE_NO_SYSTEM_TRUST=1</code> to leave the system store alone.</p>
        <h2>Download the CA certificate</h2>
        <ul>
        <li><a href="/cert/pem">PEM</a> (Linux, macOS, most tools)</li>
        <li><a href="/cert/cer">DER (.cer)</a> (Windows, Android)</li>
        </ul>
        <h2>By hand</h2>
        <ul>
        <li><b>Debian, Ubuntu, Alpine</b>: copy the PEM to <code>/usr/local/share/ca-certificates/passsage-ca.crt</code>, then run <code>update-ca-certificates</code>.</li>
        <li><b>RHEL, Fedora</b>: copy the PEM to <code>/etc/pki/ca-trust/source/anchors/</code>, then run <code>update-ca-trust extract</code>.</li>
        <li><b>macOS</b>: <code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain mitmproxy-ca-cert.pem</code></li>
        <li><b>Windows</b>: <code>certutil -addstore root mitmproxy-ca-cert.cer</code> (as administrator)</li>
        <li><b>Python, pip, Node</b>: point <code>REQUESTS_CA_BUNDLE</code>, <code>PIP_CERT</code> or <code>NODE_EXTRA_CA_CERTS</code> at a bundle that contains the CA.</li>
        </ul>
        </body></html>

        """
    }

    static func htmlEscape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }
}
