@testable import Onboarding
import Testing

@Suite("mitm.it site and proxy-env.sh rendering")
struct OnboardingTests {
    let site = OnboardingSite(caCertificatePEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                              caCertificateDER: [1, 2, 3], noProxyExtra: ["registry.internal", ".corp"])

    @Test("routes")
    func routes() {
        let pem = site.respond(method: "GET", pathAndQuery: "/cert/pem", proxyURL: "http://p:1")
        #expect(pem.status == 200 && pem.contentType == "application/x-x509-ca-cert")
        #expect(String(decoding: pem.body, as: UTF8.self).hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(site.respond(method: "GET", pathAndQuery: "/cert/cer", proxyURL: "").body == [1, 2, 3])
        #expect(site.respond(method: "GET", pathAndQuery: "/", proxyURL: "http://p:1").contentType.hasPrefix("text/html"))
        #expect(site.respond(method: "GET", pathAndQuery: "/proxy-env.sh?v=2", proxyURL: "http://p:1").status == 200)
        #expect(site.respond(method: "GET", pathAndQuery: "/proxy-env", proxyURL: "http://p:1").status == 200)
        #expect(site.respond(method: "GET", pathAndQuery: "/nope", proxyURL: "").status == 404)
        #expect(site.respond(method: "POST", pathAndQuery: "/", proxyURL: "").status == 405)
    }

    @Test("the script embeds the proxy URL, NO_PROXY with extras, and the CA; it never calls exit")
    func scriptContents() {
        let body = site.respond(method: "GET", pathAndQuery: "/proxy-env.sh", proxyURL: "http://proxy.ci:8080").body
        let script = String(decoding: body, as: UTF8.self)
        #expect(script.contains("_passsage_proxy_url='http://proxy.ci:8080'"))
        #expect(script.contains("_passsage_no_proxy='localhost,127.0.0.1,::1,169.254.169.254,169.254.170.2,registry.internal,.corp'"))
        #expect(script.contains("_passsage_ca_pem='-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'"))
        #expect(!script.contains("__PASSSAGE_"))
        let words = script.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == ";" })
        #expect(!words.contains("exit"), "sourcing must never exit the caller's shell")
    }

    @Test("shell quoting survives single quotes")
    func quoting() {
        #expect(ProxyEnvScript.shellSingleQuoted("it's") == "'it'\\''s'")
        #expect(IndexPage.htmlEscape("<a href=\"x\">") == "&lt;a href=&quot;x&quot;&gt;")
    }
}
