/// Renders `proxy-env.sh`, the onboarding script clients source to use the proxy.
///
/// Differences from the original (see docs/onboarding.md): it never calls `exit` (everything runs in
/// a function called from an `if`, so neither `set -e` nor an error can end the caller's shell), it
/// leaves no temporary files, it always embeds a real CA (rendering fails otherwise), CA bundle
/// variables point at a bundle that really contains our CA, and the proxy URL comes from
/// `--public-proxy-url` or the address the client used rather than a fixed `localhost:8080`.
public enum ProxyEnvScript {
    /// Never proxied: loopback, and the EC2/ECS/EKS metadata endpoints used for credentials.
    public static let defaultNoProxy = ["localhost", "127.0.0.1", "::1", "169.254.169.254", "169.254.170.2"]

    public static func render(proxyURL: String, noProxy: [String], caCertificatePEM: String) -> String {
        template
            .replacingPlaceholder("__PASSSAGE_PROXY_URL__", with: shellSingleQuoted(proxyURL))
            .replacingPlaceholder("__PASSSAGE_NO_PROXY__", with: shellSingleQuoted(noProxy.joined(separator: ",")))
            .replacingPlaceholder("__PASSSAGE_CA_PEM__", with: shellSingleQuoted(caCertificatePEM.trimmingTrailingNewlines()))
    }

    /// Quotes `text` for POSIX shells: single quotes, with embedded ones spelled `'\''`.
    static func shellSingleQuoted(_ text: String) -> String {
        "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    static let template = #"""
    # passsage onboarding script. Source it; do not execute it:
    #
    #   . <(curl -fsSL -x http://PROXY:PORT http://mitm.it/proxy-env.sh)      (bash, zsh)
    #   curl -fsSL -x http://PROXY:PORT http://mitm.it/proxy-env.sh -o /tmp/passsage-env.sh
    #   . /tmp/passsage-env.sh                                                  (any POSIX sh)
    #
    # It trusts the proxy's CA and exports HTTP_PROXY/HTTPS_PROXY/NO_PROXY (both cases).
    # It never exits your shell: on any error it prints a message and returns.
    #
    # Settings (environment variables, since POSIX "." passes no arguments):
    #   PASSSAGE_NO_CERTIFICATE=1   skip everything certificate related (also: --no-certificate)
    #   PASSSAGE_NO_SYSTEM_TRUST=1  never touch the system trust store; use ~/.passsage only

    _passsage_proxy_url=__PASSSAGE_PROXY_URL__
    _passsage_no_proxy=__PASSSAGE_NO_PROXY__
    _passsage_ca_pem=__PASSSAGE_CA_PEM__

    _passsage_log() {
        printf 'passsage: %s\n' "$*" >&2
    }

    # Exports $1=$2 and remembers the line for ~/.passsage/proxy-env.sh.
    _passsage_export() {
        export "$1=$2"
        _passsage_lines="$_passsage_lines
    export $1='$2'"
    }

    # Installs $1 into the system trust store. Returns non-zero when not allowed or not possible.
    _passsage_install_system_ca() {
        case "${PASSSAGE_NO_SYSTEM_TRUST:-0}" in
            1|true|yes) return 1 ;;
        esac
        if [ "$(id -u 2>/dev/null)" = "0" ]; then
            _passsage_sudo=""
        elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            _passsage_sudo="sudo -n"
        else
            _passsage_log "not root and no password-less sudo: skipping the system trust store"
            return 1
        fi
        case "$(uname -s 2>/dev/null)" in
            Darwin)
                command -v security >/dev/null 2>&1 || return 1
                $_passsage_sudo security add-trusted-cert -d -r trustRoot \
                    -k /Library/Keychains/System.keychain "$1" >/dev/null 2>&1
                return $?
                ;;
            Linux)
                if command -v update-ca-certificates >/dev/null 2>&1 && [ -d /usr/local/share/ca-certificates ]; then
                    $_passsage_sudo cp "$1" /usr/local/share/ca-certificates/passsage-ca.crt &&
                        $_passsage_sudo update-ca-certificates >/dev/null 2>&1
                    return $?
                elif command -v update-ca-trust >/dev/null 2>&1 && [ -d /etc/pki/ca-trust/source/anchors ]; then
                    $_passsage_sudo cp "$1" /etc/pki/ca-trust/source/anchors/passsage-ca.pem &&
                        $_passsage_sudo update-ca-trust extract >/dev/null 2>&1
                    return $?
                elif command -v trust >/dev/null 2>&1; then
                    $_passsage_sudo trust anchor --store "$1" >/dev/null 2>&1
                    return $?
                fi
                return 1
                ;;
        esac
        return 1
    }

    _passsage_main() {
        _passsage_skip_cert="${PASSSAGE_NO_CERTIFICATE:-0}"
        for _passsage_arg in "$@"; do
            if [ "$_passsage_arg" = "--no-certificate" ]; then _passsage_skip_cert=1; fi
        done

        _passsage_home="${HOME:-}"
        if [ -z "$_passsage_home" ]; then _passsage_home="${PWD:-.}"; fi
        _passsage_dir="$_passsage_home/.passsage"
        if ! mkdir -p "$_passsage_dir" 2>/dev/null; then
            _passsage_log "cannot create $_passsage_dir; nothing will be saved there"
            _passsage_dir=""
        fi

        _passsage_lines="# Written by passsage proxy-env.sh; source it to reuse these settings."
        for _passsage_var in HTTP_PROXY HTTPS_PROXY http_proxy https_proxy; do
            _passsage_export "$_passsage_var" "$_passsage_proxy_url"
        done
        _passsage_export NO_PROXY "$_passsage_no_proxy"
        _passsage_export no_proxy "$_passsage_no_proxy"

        case "$_passsage_skip_cert" in
            1|true|yes) _passsage_log "skipping the CA certificate as asked" ;;
            *) _passsage_setup_ca ;;
        esac

        if [ -n "$_passsage_dir" ]; then
            _passsage_saved="$_passsage_dir/proxy-env.sh"
            if printf '%s\n' "$_passsage_lines" > "$_passsage_saved.tmp" 2>/dev/null &&
                mv -f "$_passsage_saved.tmp" "$_passsage_saved" 2>/dev/null; then
                :
            else
                _passsage_log "could not save $_passsage_saved"
            fi
        fi
        _passsage_log "proxy set to $_passsage_proxy_url"
        return 0
    }

    _passsage_setup_ca() {
        if [ -z "$_passsage_dir" ]; then
            _passsage_log "no writable ~/.passsage: cannot set up the CA bundle"
            return 1
        fi
        _passsage_ca_file="$_passsage_dir/passsage-ca.pem"
        if ! printf '%s\n' "$_passsage_ca_pem" > "$_passsage_ca_file" 2>/dev/null; then
            _passsage_log "cannot write $_passsage_ca_file"
            return 1
        fi
        if _passsage_install_system_ca "$_passsage_ca_file"; then
            _passsage_log "CA installed into the system trust store"
        fi

        # Tools that read a bundle file (Python, pip, curl, git) get one that holds the system roots
        # and our CA, so it works whether or not the system store could be changed.
        _passsage_bundle="$_passsage_dir/ca-bundle.pem"
        _passsage_system_bundle=""
        for _passsage_candidate in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
            /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
            if [ -r "$_passsage_candidate" ]; then
                _passsage_system_bundle="$_passsage_candidate"
                break
            fi
        done
        if {
            if [ -n "$_passsage_system_bundle" ]; then cat "$_passsage_system_bundle"; fi
            printf '\n'
            cat "$_passsage_ca_file"
        } > "$_passsage_bundle.tmp" 2>/dev/null && mv -f "$_passsage_bundle.tmp" "$_passsage_bundle" 2>/dev/null; then
            :
        else
            _passsage_log "cannot write $_passsage_bundle"
            return 1
        fi
        if [ -z "$_passsage_system_bundle" ]; then
            _passsage_log "no system CA bundle found: $_passsage_bundle trusts only the proxy CA"
        fi
        for _passsage_var in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE PIP_CERT GIT_SSL_CAINFO; do
            _passsage_export "$_passsage_var" "$_passsage_bundle"
        done
        # Node adds these to its own built-in roots, so it wants the CA alone.
        _passsage_export NODE_EXTRA_CA_CERTS "$_passsage_ca_file"
        return 0
    }

    if _passsage_main "$@"; then
        :
    else
        _passsage_log "setup did not complete; see the messages above"
    fi
    unset -f _passsage_log _passsage_export _passsage_install_system_ca _passsage_main _passsage_setup_ca 2>/dev/null
    unset _passsage_proxy_url _passsage_no_proxy _passsage_ca_pem _passsage_skip_cert _passsage_arg \
        _passsage_home _passsage_dir _passsage_lines _passsage_saved _passsage_var \
        _passsage_sudo _passsage_ca_file _passsage_bundle _passsage_system_bundle _passsage_candidate 2>/dev/null
    true

    """#
}

extension String {
    func replacingPlaceholder(_ placeholder: String, with value: String) -> String {
        split(separator: placeholder, omittingEmptySubsequences: false).joined(separator: value)
    }

    func trimmingTrailingNewlines() -> String {
        var view = Substring(self)
        while view.last == "\n" || view.last == "\r" { view = view.dropLast() }
        return String(view)
    }
}
