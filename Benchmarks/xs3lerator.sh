#!/usr/bin/env bash
# xs3lerator as a download accelerator, measured in one run (release build, loopback).
#
# The origin (our test origin) serves a 1 GiB object capped at 20 MB/s per connection, as many
# CDNs and package mirrors do. It is downloaded three ways:
#   1. curl directly: one stream, the baseline;
#   2. curl through xs3lerator (--http-concurrency 8, default 32 MiB chunks, 8 MiB ranges);
#   3. aria2c -x8 -s8 directly (Debian's aria2), the reference accelerator.
# Every body is hashed and compared (the accelerators' after the transfer, from the file they wrote).
# Prints MB/s and the speed-ups over curl. XS3_ARGS adds xs3lerator options.
# Usage: Benchmarks/xs3lerator.sh [size-bytes] [bytes-per-second-per-connection]
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${1:-1073741824}"
RATE="${2:-20000000}"

if ! command -v aria2c >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq aria2; } >&2 \
        || echo "aria2c is not available; its row is skipped" >&2
fi

source Benchmarks/common.sh
start_work
BIN="$(release_bin xs3lerator passsage-bench)"

"$BIN/passsage-bench" origin --plain --ca-out "$WORK/unused.pem" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/origin.log" "origin listening"
ORIGIN="http://127.0.0.1:$(grep -o '[0-9]*$' "$WORK/origin.log")"

mkdir -p "$WORK/tmp"
"$BIN/xs3lerator" --bind-ip 127.0.0.1 --port 0 --passthrough --http-concurrency 8 --temp-dir "$WORK/tmp" ${XS3_ARGS:-} \
    >"$WORK/xs3.log" 2>&1 &
XS3_PID=$!
PIDS+=($XS3_PID)
wait_for "$WORK/xs3.log" "xs3lerator listening"
XS3="http://127.0.0.1:$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/xs3.log" | grep -o '[0-9]*$')"

URL="$ORIGIN/object/$SIZE?rate=$RATE"
now() { date +%s.%N; }
mbps() { awk -v b="$SIZE" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

echo "== $SIZE bytes, origin capped at $RATE bytes/s per connection"
start=$(now); CURL_SUM=$(curl -sS "$URL" | sha256sum | cut -c1-64); CURL_S=$(awk -v a="$start" -v b="$(now)" 'BEGIN{print b-a}')
echo "curl direct:        $(mbps "$CURL_S") MB/s  (${CURL_S}s)"

# Like aria2c, into a file; hashed afterwards, so hashing does not compete for the 2 cores.
start=$(now); curl -sS -o "$WORK/xs3.bin" "$XS3/$URL&run=xs3"; XS3_S=$(awk -v a="$start" -v b="$(now)" 'BEGIN{print b-a}')
XS3_SUM=$(sha256sum "$WORK/xs3.bin" | cut -c1-64); rm -f "$WORK/xs3.bin"
echo "xs3lerator -c 8:    $(mbps "$XS3_S") MB/s  (${XS3_S}s)  peak RSS $(awk '/VmHWM/ {print int($2/1024)}' /proc/$XS3_PID/status) MiB"
[ "$XS3_SUM" = "$CURL_SUM" ] || { echo "xs3lerator body differs from the direct download" >&2; exit 1; }

if command -v aria2c >/dev/null 2>&1; then
    start=$(now)
    aria2c -q -x8 -s8 --file-allocation=none --allow-overwrite=true -d "$WORK" -o aria2.bin "$URL&run=aria2"
    ARIA_S=$(awk -v a="$start" -v b="$(now)" 'BEGIN{print b-a}')
    [ "$(sha256sum "$WORK/aria2.bin" | cut -c1-64)" = "$CURL_SUM" ] || { echo "aria2c body differs" >&2; exit 1; }
    rm -f "$WORK/aria2.bin"
    echo "aria2c -x8 -s8:     $(mbps "$ARIA_S") MB/s  (${ARIA_S}s)"
fi

echo "== speed-ups"
awk -v c="$CURL_S" -v x="$XS3_S" 'BEGIN { printf "xs3lerator / curl:  %.2fx (target >= 6)\n", c / x }'
if [ -n "${ARIA_S:-}" ]; then
    awk -v c="$CURL_S" -v a="$ARIA_S" 'BEGIN { printf "aria2c / curl:      %.2fx\n", c / a }'
    awk -v a="$ARIA_S" -v x="$XS3_S" 'BEGIN { printf "xs3lerator / aria2c: %.2fx (target >= 1)\n", a / x }'
fi
