# Shared by the benchmark scripts (sourced, not run).

# start_work: a scratch directory ($WORK) and the background processes started ($PIDS), both
# cleaned up on exit; a script with more to clean up redefines cleanup_extra (run before the
# directory goes).
start_work() {
    WORK="$(mktemp -d)"
    PIDS=()
    trap cleanup EXIT
}
cleanup_extra() { :; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    cleanup_extra
    rm -rf "$WORK"
}

# wait_for FILE PATTERN: polls (up to 30 s) until FILE contains PATTERN, e.g. a "listening" line.
wait_for() {
    for _ in $(seq 1 300); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# release_bin PRODUCT...: builds the products in release mode and prints the binary directory.
release_bin() {
    for product in "$@"; do swift build -c release --product "$product" >&2; done
    swift build -c release --show-bin-path
}

# start_squid CACHE-CONFIG: Squid (Debian's squid-openssl) with ssl-bump on a free port, trusting
# $WORK/origin-ca.pem upstream and answering for https://localhost:$ORIGIN_PORT; CACHE-CONFIG is
# appended to its configuration (e.g. "cache deny all"). Sets SQ (its directory, with its CA in
# $SQ/ca.pem) and SQUID_PORT; returns once it answers. Callers stop it in cleanup_extra.
start_squid() {
    SQ="$WORK/squid"
    mkdir -p "$SQ"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 -nodes -x509 \
        -subj "/CN=squid-bench" -keyout "$SQ/ca.key" -out "$SQ/ca.pem" 2>/dev/null
    cat "$SQ/ca.key" "$SQ/ca.pem" > "$SQ/ca-bundle.pem"
    /usr/lib/squid/security_file_certgen -c -s "$SQ/ssl_db" -M 16MB >/dev/null
    SQUID_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    cat > "$SQ/squid.conf" <<CONF
http_port 127.0.0.1:$SQUID_PORT ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$SQ/ca-bundle.pem
sslcrtd_program /usr/lib/squid/security_file_certgen -s $SQ/ssl_db -M 16MB
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$WORK/origin-ca.pem
http_access allow all
access_log stdio:$SQ/access.log
cache_log $SQ/cache.log
pid_filename $SQ/squid.pid
coredump_dir $SQ
$1
CONF
    chmod 644 "$WORK/origin-ca.pem"
    [ "$(id -u)" = "0" ] && chown -R proxy:proxy "$SQ" 2>/dev/null || true
    squid -f "$SQ/squid.conf" -N >"$SQ/squid.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
        curl -s -o /dev/null -x "http://127.0.0.1:$SQUID_PORT" --cacert "$SQ/ca.pem" "https://localhost:$ORIGIN_PORT/small" && return 0
        sleep 0.1
    done
    echo "Squid did not answer; see $SQ/cache.log" >&2
    return 1
}
