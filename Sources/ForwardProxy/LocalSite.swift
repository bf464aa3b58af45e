import HTTPRules
import NIOCore
import NIOHTTP1
import Onboarding

/// The answers passsage gives itself: the `mitm.it` onboarding site, also for origin-form requests
/// addressed to the proxy's own listener.
struct LocalSite: ResponseSource {
    let onboarding: OnboardingSite
    /// `--public-proxy-url`: what the onboarding script exports, when set.
    let configuredProxyURL: String?
    /// The listener's port, for the last-resort proxy URL.
    let listenerPort: Int

    func plan(for request: SourceRequest, eventLoop: any EventLoop) -> ResponsePlan? {
        let pathAndQuery: String
        let addressedToProxy: Bool
        switch request.target {
        case .proxyItself(let path):
            (pathAndQuery, addressedToProxy) = (path, true)
        case .url(_, let authority, let path) where authority.host == OnboardingSite.hostName:
            (pathAndQuery, addressedToProxy) = (path, false)
        case .url:
            return nil
        }
        let proxyURL = publicProxyURL(hostHeader: addressedToProxy ? request.head.headers.first(name: "host") : nil,
                                      localAddress: request.localAddress)
        let response = onboarding.respond(method: request.head.method.rawValue, pathAndQuery: pathAndQuery,
                                          proxyURL: proxyURL)
        var headers = HTTPHeaders([("Content-Type", response.contentType), ("Cache-Control", "no-store")])
        headers.add(contentsOf: response.extraHeaders)
        return .local(LocalReply(status: HTTPResponseStatus(statusCode: response.status), headers: headers,
                                 body: response.body))
    }

    /// The proxy URL to put into `proxy-env.sh` for a client that reached us through `localAddress`
    /// (the Host header it used, when it addressed the proxy itself).
    func publicProxyURL(hostHeader: String?, localAddress: SocketAddress?) -> String {
        if let configuredProxyURL {
            return configuredProxyURL
        }
        if let hostHeader, (try? Authority.parse(hostHeader, defaultPort: 80)) != nil {
            return "http://" + hostHeader
        }
        if let localAddress, let ip = localAddress.ipAddress, let port = localAddress.port {
            let host = ip.contains(":") ? "[\(ip)]" : ip
            return "http://\(host):\(port)"
        }
        return "http://localhost:\(listenerPort)"
    }
}
