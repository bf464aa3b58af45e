#!/usr/bin/env bash
# Cache hits through the MITM, measured in one run against Squid and against the origin itself
# (release build, loopback, everything on the same cores):
#
#   1. small hits: keep-alive req/s with the load tool (32 connections) for a 1 KiB object;
#   2. a 64 MiB hit: MB/s with curl, 3 transfers on one keep-alive connection.
#
# passsage runs its embedded cache (local objects + SQLite in a fresh --data-dir); Squid (Debian's
# squid-openssl) runs ssl-bump with a memory cache big enough for both objects; "roof" is the same
# load straight against our TLS origin. Each object is fetched once through each proxy first, and a
# hit is checked (Cache-Status / X-Cache) before anything is timed.
# Usage: Benchmarks/cache-hits.sh [seconds-per-load-run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
SIZE=$((64 * 1024 * 1024))
source Benchmarks/common.sh
start_work
chmod 755 "$WORK"   # Squid drops privileges to its own user
cleanup_extra() { [ -f "$WORK/squid/squid.pid" ] && kill "$(cat "$WORK/squid/squid.pid")" 2>/dev/null || true; }
BIN="$(release_bin passsage passsage-bench)"
if ! command -v squid >/dev/null 2>&1 || [ ! -x /usr/lib/squid/security_file_certgen ]; then
    echo "Squid is the baseline: apt-get install squid-openssl" >&2
    exit 1
fi

"$BIN/passsage-bench" origin --ca-out "$WORK/origin-ca.pem" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/origin.log" "origin listening"
ORIGIN_PORT="$(grep -o '[0-9]*$' "$WORK/origin.log")"
SMALL="/object/1024?cc=max-age%3D3600"
LARGE="/object/$SIZE?cc=max-age%3D3600"

"$BIN/passsage" --bind 127.0.0.1 --port 0 --health-port 0 --ca-dir "$WORK/ca" --data-dir "$WORK/data" \
    --upstream-ca-file "$WORK/origin-ca.pem" --deny-upstream "" >"$WORK/passsage.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/passsage.log" "passsage proxy listening"
PROXY_PORT="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/passsage.log" | grep -o '[0-9]*$')"
curl -sf -x "http://127.0.0.1:$PROXY_PORT" -o "$WORK/proxy-ca.pem" http://mitm.it/cert/pem

start_squid "cache_mem 512 MB
maximum_object_size_in_memory 128 MB
maximum_object_size 128 MB
memory_cache_mode always"

# Warm both caches and check that the next request is a hit.
warm() {  # proxy-port ca-file hit-pattern path
    local headers=""
    for _ in $(seq 1 50); do
        headers="$(curl -s -D - -o /dev/null -x "http://127.0.0.1:$1" --cacert "$2" "https://localhost:$ORIGIN_PORT$4")"
        if echo "$headers" | grep -qi "$3"; then return 0; fi
        sleep 0.2
    done
    echo "no hit for $4 through port $1:" >&2
    echo "$headers" >&2
    exit 1
}
for path in "$SMALL" "$LARGE"; do
    warm "$PROXY_PORT" "$WORK/proxy-ca.pem" "cache-status: passsage;hit" "$path"
    warm "$SQUID_PORT" "$SQ/ca.pem" "x-cache: HIT" "$path"
done

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
load() {  # extra args...
    "$BIN/passsage-bench" load --port "$ORIGIN_PORT" --connections "$CONNECTIONS" --duration "$DURATION" --path "$SMALL" "$@"
}
echo "== small hits (1 KiB): $CONNECTIONS keep-alive connections, ${DURATION}s each"
load --ca "$WORK/origin-ca.pem" >/dev/null   # warm-up
ROOF_LINE="$(load --ca "$WORK/origin-ca.pem")"
PASSSAGE_LINE="$(load --ca "$WORK/proxy-ca.pem" --proxy "127.0.0.1:$PROXY_PORT")"
SQUID_LINE="$(load --ca "$SQ/ca.pem" --proxy "127.0.0.1:$SQUID_PORT")"
echo "roof:     $ROOF_LINE"
echo "passsage: $PASSSAGE_LINE"
echo "squid:    $SQUID_LINE"

echo "== 64 MiB hits, 3 transfers on one keep-alive connection"
URL="https://localhost:$ORIGIN_PORT$LARGE"
speeds() { curl -s "$@" -o /dev/null -o /dev/null -o /dev/null -w '%{speed_download}\n' "$URL" "$URL" "$URL"; }
median() { sort -n | sed -n 2p; }
ROOF_SPEEDS="$(speeds --cacert "$WORK/origin-ca.pem")"
PASSSAGE_SPEEDS="$(speeds --cacert "$WORK/proxy-ca.pem" -x "http://127.0.0.1:$PROXY_PORT")"
SQUID_SPEEDS="$(speeds --cacert "$SQ/ca.pem" -x "http://127.0.0.1:$SQUID_PORT")"
for name in ROOF PASSSAGE SQUID; do
    speeds_var="${name}_SPEEDS"
    echo "$(printf '%-9s' "$(echo "$name" | tr 'A-Z' 'a-z'):") $(echo "${!speeds_var}" | awk '{printf "%.0f ", $1/1e6}') MB/s"
done

ROOF_RPS="$(echo "$ROOF_LINE" | field req_per_s)"
PASSSAGE_RPS="$(echo "$PASSSAGE_LINE" | field req_per_s)"
SQUID_RPS="$(echo "$SQUID_LINE" | field req_per_s)"
ROOF_BPS="$(echo "$ROOF_SPEEDS" | median)"
PASSSAGE_BPS="$(echo "$PASSSAGE_SPEEDS" | median)"
SQUID_BPS="$(echo "$SQUID_SPEEDS" | median)"
echo "== ratios"
awk -v p="$PASSSAGE_RPS" -v s="$SQUID_RPS" -v r="$ROOF_RPS" \
    'BEGIN{printf "small hits req/s:  passsage/squid %.2f (resolve >= 1.0), passsage/roof %.2f (aim >= 0.95), squid/roof %.2f\n", p/s, p/r, s/r}'
awk -v p="$PASSSAGE_BPS" -v s="$SQUID_BPS" -v r="$ROOF_BPS" \
    'BEGIN{printf "64 MiB hits MB/s:  passsage/squid %.2f (resolve >= 1.0, aim >= 2), passsage/roof %.2f, squid/roof %.2f\n", p/s, p/r, s/r}'
PASSSAGE_PID="$(pgrep -f "$BIN/passsage --bind" | head -1)"
echo "passsage peak RSS: $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$PASSSAGE_PID/status") MiB"
