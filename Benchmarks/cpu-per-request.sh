#!/usr/bin/env bash
# CPU time the proxy spends per small proxied request, for one or more passsage binaries against
# the same TLS origin and load (keep-alive GET /small through CONNECT interception). Throughput on
# 2 shared cores swings ±15 % between runs; the proxy's own CPU per request is far steadier, so this
# is the measure for an A/B of two builds. Usage:
#   Benchmarks/cpu-per-request.sh [rounds] [seconds] [passsage-binary ...]
# Without binaries it builds and measures this tree's release build. Binaries are measured in turn,
# round after round, so drift in the machine hits them alike.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
DURATION="${2:-10}"
shift $(( $# > 2 ? 2 : $# ))
source Benchmarks/common.sh
BIN="$(release_bin passsage passsage-bench)"
BINARIES=("$@")
[ "${#BINARIES[@]}" -gt 0 ] || BINARIES=("$BIN/passsage")
start_work

"$BIN/passsage-bench" origin --ca-out "$WORK/origin-ca.pem" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/origin.log" "origin listening"
ORIGIN_PORT="$(grep -o '[0-9]*$' "$WORK/origin.log")"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"

for round in $(seq 1 "$ROUNDS"); do
    for binary in "${BINARIES[@]}"; do
        LOG="$WORK/proxy.log"
        # --deny-upstream is passed only to builds that know it (the origin is on loopback).
        DENY=()
        if [ "$("$binary" serve --help 2>&1 | grep -c -- --deny-upstream)" -gt 0 ]; then DENY=(--deny-upstream ""); fi
        # The forwarding path is measured: no cache (older builds have none to turn off).
        if [ "$("$binary" serve --help 2>&1 | grep -c -- --no-cache)" -gt 0 ]; then DENY+=(--no-cache); fi
        "$binary" --bind 127.0.0.1 --port 0 --health-port 0 --ca-dir "$WORK/ca-$round" \
            --upstream-ca-file "$WORK/origin-ca.pem" "${DENY[@]}" >"$LOG" 2>&1 &
        PID=$!
        wait_for "$LOG" "passsage proxy listening"
        PORT="$(grep -o 'listening on 127.0.0.1:[0-9]*' "$LOG" | grep -o '[0-9]*$')"
        curl -sf -x "http://127.0.0.1:$PORT" -o "$WORK/proxy-ca.pem" http://mitm.it/cert/pem
        "$BIN/passsage-bench" load --port "$ORIGIN_PORT" --connections 32 --duration 2 \
            --ca "$WORK/proxy-ca.pem" --proxy "127.0.0.1:$PORT" >/dev/null   # warm-up
        BEFORE="$(ticks "$PID")"
        LINE="$("$BIN/passsage-bench" load --port "$ORIGIN_PORT" --connections 32 --duration "$DURATION" \
            --ca "$WORK/proxy-ca.pem" --proxy "127.0.0.1:$PORT")"
        AFTER="$(ticks "$PID")"
        kill "$PID"; wait "$PID" 2>/dev/null || true
        REQUESTS="$(echo "$LINE" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')"
        RPS="$(echo "$LINE" | sed -n 's/.*req_per_s=\([0-9]*\).*/\1/p')"
        awk -v b="$binary" -v r="$round" -v t=$((AFTER - BEFORE)) -v n="$REQUESTS" -v hz="$HZ" -v rps="$RPS" \
            'BEGIN { printf "round %d  %-45s  %6d req/s  %.1f us CPU per request\n", r, b, rps, t / hz * 1e6 / n }'
    done
done
