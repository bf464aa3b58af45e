#!/usr/bin/env bash
# Interception overhead, measured in one run against a direct baseline (release build, loopback).
#
#   1. small responses: keep-alive req/s with the load tool, directly against the TLS origin and
#      through passsage's CONNECT interception (same tool, same connection count);
#   2. a 256 MiB body: MB/s with curl, directly and through passsage, 3 transfers on one
#      keep-alive connection each way.
#
# Prints both ratios. When Squid is installed (Debian's squid-openssl), the same two measurements run
# through Squid with ssl-bump too (caching off, Squid's default single worker), the proxy a team would
# otherwise pick. Usage: Benchmarks/interception.sh [seconds-per-load-run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
SIZE=$((256 * 1024 * 1024))
source Benchmarks/common.sh
start_work
chmod 755 "$WORK"   # Squid drops privileges to its own user
cleanup_extra() { [ -f "$WORK/squid/squid.pid" ] && kill "$(cat "$WORK/squid/squid.pid")" 2>/dev/null || true; }
BIN="$(release_bin passsage passsage-bench)"

"$BIN/passsage-bench" origin --ca-out "$WORK/origin-ca.pem" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/origin.log" "origin listening"
ORIGIN_PORT="$(grep -o '[0-9]*$' "$WORK/origin.log")"

"$BIN/passsage" --bind 127.0.0.1 --port 0 --health-port 0 --ca-dir "$WORK/ca" \
    --upstream-ca-file "$WORK/origin-ca.pem" --deny-upstream "" --no-cache >"$WORK/passsage.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/passsage.log" "passsage proxy listening"
PROXY_PORT="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/passsage.log" | grep -o '[0-9]*$')"
curl -sf -x "http://127.0.0.1:$PROXY_PORT" -o "$WORK/proxy-ca.pem" http://mitm.it/cert/pem

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
load() {  # extra args...
    "$BIN/passsage-bench" load --port "$ORIGIN_PORT" --connections "$CONNECTIONS" --duration "$DURATION" "$@"
}
echo "== small responses: $CONNECTIONS keep-alive connections, ${DURATION}s each"
load --ca "$WORK/origin-ca.pem" >/dev/null                         # warm-up
DIRECT_LINE="$(load --ca "$WORK/origin-ca.pem")"
PROXY_LINE="$(load --ca "$WORK/proxy-ca.pem" --proxy "127.0.0.1:$PROXY_PORT")"
echo "direct:  $DIRECT_LINE"
echo "proxied: $PROXY_LINE"
DIRECT_RPS="$(echo "$DIRECT_LINE" | field req_per_s)"
PROXY_RPS="$(echo "$PROXY_LINE" | field req_per_s)"

echo "== 256 MiB body, 3 transfers on one keep-alive connection"
URL="https://localhost:$ORIGIN_PORT/bytes/$SIZE"
speeds() { curl -s "$@" -o /dev/null -o /dev/null -o /dev/null -w '%{speed_download}\n' "$URL" "$URL" "$URL"; }
DIRECT_SPEEDS="$(speeds --cacert "$WORK/origin-ca.pem")"
PROXY_SPEEDS="$(speeds --cacert "$WORK/proxy-ca.pem" -x "http://127.0.0.1:$PROXY_PORT")"
median() { sort -n | sed -n 2p; }
DIRECT_BPS="$(echo "$DIRECT_SPEEDS" | median)"
PROXY_BPS="$(echo "$PROXY_SPEEDS" | median)"
echo "direct:  $(echo "$DIRECT_SPEEDS" | awk '{printf "%.0f ", $1/1e6}') MB/s (median $(awk -v b="$DIRECT_BPS" 'BEGIN{printf "%.0f", b/1e6}'))"
echo "proxied: $(echo "$PROXY_SPEEDS" | awk '{printf "%.0f ", $1/1e6}') MB/s (median $(awk -v b="$PROXY_BPS" 'BEGIN{printf "%.0f", b/1e6}'))"

SQUID_RPS=""
SQUID_BPS=""
if command -v squid >/dev/null 2>&1 && [ -x /usr/lib/squid/security_file_certgen ]; then
    start_squid "cache deny all
cache_mem 0 MB"
    echo "== Squid $(squid -v | sed -n 's/.*Version \([0-9.]*\).*/\1/p') with ssl-bump, caching off"
    SQUID_LINE="$(load --ca "$SQ/ca.pem" --proxy "127.0.0.1:$SQUID_PORT")"
    SQUID_SPEEDS="$(speeds --cacert "$SQ/ca.pem" -x "http://127.0.0.1:$SQUID_PORT")"
    SQUID_RPS="$(echo "$SQUID_LINE" | field req_per_s)"
    SQUID_BPS="$(echo "$SQUID_SPEEDS" | median)"
    echo "squid:   $SQUID_LINE"
    echo "squid:   $(echo "$SQUID_SPEEDS" | awk '{printf "%.0f ", $1/1e6}') MB/s (median $(awk -v b="$SQUID_BPS" 'BEGIN{printf "%.0f", b/1e6}'))"
else
    echo "== Squid baseline skipped (apt-get install squid-openssl to include it)"
fi

echo "== ratios (proxied / direct)"
awk -v p="$PROXY_RPS" -v d="$DIRECT_RPS" 'BEGIN{printf "small responses req/s: %.2f (target >= 0.50)\n", p/d}'
awk -v p="$PROXY_BPS" -v d="$DIRECT_BPS" 'BEGIN{printf "256 MiB MB/s:          %.2f (target >= 0.70)\n", p/d}'
if [ -n "$SQUID_RPS" ]; then
    echo "== passsage / Squid"
    awk -v p="$PROXY_RPS" -v s="$SQUID_RPS" 'BEGIN{printf "small responses req/s: %.2f\n", p/s}'
    awk -v p="$PROXY_BPS" -v s="$SQUID_BPS" 'BEGIN{printf "256 MiB MB/s:          %.2f\n", p/s}'
fi
