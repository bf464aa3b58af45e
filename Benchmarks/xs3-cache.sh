#!/usr/bin/env bash
# xs3lerator as a cache, measured in one run (release build, loopback, moto as S3 with auth on).
#
#   (a) a 1 GiB hit from the disk cache, against curl downloading the same bytes from our origin;
#   (b) a 1 GiB hit from S3 through a per-connection bandwidth cap in front of moto (standing in
#       for S3's per-connection limit), with --hit-read-ahead 8 against 1;
#   (c) 50 clients asking at once for one uncached object: the number of upstream downloads (must
#       be 1) and the total time against one client alone, the origin capped per connection;
#   (d) xs3lerator's peak RSS in each of the above.
# Every timed body goes to /dev/null; each kind of answer is hashed once, untimed, and compared.
# Usage: Benchmarks/xs3-cache.sh [size-bytes] [s3-bytes-per-second-per-connection]
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${1:-1073741824}"
S3_RATE="${2:-40000000}"
COLLAPSE_SIZE=$((200 << 20))
COLLAPSE_RATE=5000000

python3 -c "import moto.server, boto3" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check "moto[server]"
source Benchmarks/common.sh
start_work
BIN="$(release_bin xs3lerator passsage-bench)"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { print b - a }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
peak_rss() { awk '/VmHWM/ { print int($2 / 1024) }' "/proc/$1/status"; }
metric() { curl -sS "$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'; }

# The origin.
"$BIN/passsage-bench" origin --plain --ca-out "$WORK/unused.pem" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/origin.log" "origin listening"
ORIGIN="http://127.0.0.1:$(grep -o '[0-9]*$' "$WORK/origin.log")"

# moto, prepared with users and a bucket, then signature checking on.
MOTO_PORT="$(free_port)"
python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$MOTO_PORT/" >/dev/null && break; sleep 0.2; done
SETUP="$(python3 Tests/StorageTests/Fixtures/moto_setup.py "http://127.0.0.1:$MOTO_PORT" passsage-tests)"
export AWS_ACCESS_KEY_ID="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["accessKey"])' "$SETUP")"
export AWS_SECRET_ACCESS_KEY="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secretKey"])' "$SETUP")"
export AWS_REGION=us-east-1

# The bandwidth cap in front of moto.
python3 Benchmarks/throttle_proxy.py 0 127.0.0.1 "$MOTO_PORT" "$S3_RATE" >"$WORK/throttle.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/throttle.log" "throttle listening"
THROTTLED="http://127.0.0.1:$(grep -o '[0-9]*$' "$WORK/throttle.log")"

# start_xs3 NAME ENDPOINT EXTRA...: an xs3lerator on moto (or the cap), SQLite in $WORK/data.
start_xs3() {
    local name="$1" endpoint="$2"; shift 2
    "$BIN/xs3lerator" --bind-ip 127.0.0.1 --port 0 --s3-bucket passsage-tests --s3-endpoint "$endpoint" \
        --data-dir "$WORK/data" "$@" >"$WORK/$name.log" 2>&1 &
    XS3_PID=$!
    PIDS+=($XS3_PID)
    wait_for "$WORK/$name.log" "xs3lerator listening"
    XS3="http://127.0.0.1:$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/$name.log" | grep -o '[0-9]*$')"
}
quiet() {
    for _ in $(seq 1 1200); do
        awk -v n="$(metric "$1" xs3_downloads_in_flight)" 'BEGIN { exit !(n + 0 == 0) }' && return 0
        sleep 0.1
    done
    echo "downloads still in flight after 120 s" >&2; return 1
}
KEY="X-Xs3lerator-Cache-Key: bench/1g"
URL="$ORIGIN/object/$SIZE"

echo "== (a) $SIZE bytes: a hit from the disk cache against curl from the origin"
mkdir -p "$WORK/disk" "$WORK/data"
start_xs3 disk "http://127.0.0.1:$MOTO_PORT" --cache-dir "$WORK/disk"
A_PID=$XS3_PID; A="$XS3"
start=$(now); curl -sS -o /dev/null -H "$KEY" "$A/$URL"; MISS_S=$(since "$start")
quiet "$A"
echo "miss (origin -> client, chunks to S3 and disk):  $(mbps "$SIZE" "$MISS_S") MB/s (${MISS_S}s)"
DIRECT_SUM=$(curl -sS "$URL" | sha256sum | cut -c1-64)
HIT_SUM=$(curl -sS -H "$KEY" "$A/$URL" | sha256sum | cut -c1-64)
[ "$DIRECT_SUM" = "$HIT_SUM" ] || { echo "the hit differs from the origin's bytes" >&2; exit 1; }
BEST_DIRECT=999; BEST_HIT=999
for round in 1 2 3; do
    start=$(now); curl -sS -o /dev/null "$URL?round=$round"; t=$(since "$start")
    BEST_DIRECT=$(awk -v a="$BEST_DIRECT" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
    start=$(now); curl -sS -o /dev/null -H "$KEY" "$A/$URL"; t=$(since "$start")
    BEST_HIT=$(awk -v a="$BEST_HIT" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
done
[ "$(curl -sS -o /dev/null -D - -H "$KEY" "$A/$URL" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-xs3lerator-cache-hit" { print $2 }')" = "true" ] \
    || { echo "(a) was not a hit" >&2; exit 1; }
echo "curl from the origin (best of 3):                $(mbps "$SIZE" "$BEST_DIRECT") MB/s (${BEST_DIRECT}s)"
echo "disk-cache hit through xs3lerator (best of 3):   $(mbps "$SIZE" "$BEST_HIT") MB/s (${BEST_HIT}s)"
A_RSS=$(peak_rss "$A_PID")
kill "$A_PID"; wait "$A_PID" 2>/dev/null || true

echo "== (b) $SIZE bytes from S3 capped at $S3_RATE bytes/s per connection, no disk cache"
declare -A B_S
for ahead in 1 8; do
    start_xs3 "s3-$ahead" "$THROTTLED" --hit-read-ahead "$ahead"
    [ "$ahead" = 8 ] && { SUM=$(curl -sS -H "$KEY" "$XS3/$URL" | sha256sum | cut -c1-64); [ "$SUM" = "$DIRECT_SUM" ] || { echo "(b) differs" >&2; exit 1; }; }
    start=$(now); curl -sS -o /dev/null -H "$KEY" "$XS3/$URL"; B_S[$ahead]=$(since "$start")
    echo "hit from S3, --hit-read-ahead $ahead:                $(mbps "$SIZE" "${B_S[$ahead]}") MB/s (${B_S[$ahead]}s), peak RSS $(peak_rss "$XS3_PID") MiB"
    B_RSS[$ahead]=$(peak_rss "$XS3_PID")
    kill "$XS3_PID"; wait "$XS3_PID" 2>/dev/null || true
done

echo "== (c) 50 clients at once for one uncached $COLLAPSE_SIZE-byte object, origin capped at $COLLAPSE_RATE bytes/s per connection"
start_xs3 collapse "http://127.0.0.1:$MOTO_PORT" --cache-dir "$WORK/disk" --chunk-size 8MiB --range-size 2MiB
C_PID=$XS3_PID; C="$XS3"
ONE="$ORIGIN/object/$COLLAPSE_SIZE?rate=$COLLAPSE_RATE&seed=1"
start=$(now); curl -sS -o /dev/null -H "X-Xs3lerator-Cache-Key: bench/one" "$C/$ONE"; ONE_S=$(since "$start")
quiet "$C"
MISSES_BEFORE=$(metric "$C" xs3_cache_misses_total)
FIFTY="$ORIGIN/object/$COLLAPSE_SIZE?rate=$COLLAPSE_RATE&seed=2"
start=$(now)
CURLS=()
for client in $(seq 1 50); do
    curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' -H "X-Xs3lerator-Cache-Key: bench/fifty" "$C/$FIFTY" >"$WORK/client-$client.txt" &
    CURLS+=($!)
done
for pid in "${CURLS[@]}"; do wait "$pid"; done
FIFTY_S=$(since "$start")
BAD=$(cat "$WORK"/client-*.txt | grep -vc "^200 $COLLAPSE_SIZE\$" || true)
DOWNLOADS=$(awk -v a="$(metric "$C" xs3_cache_misses_total)" -v b="$MISSES_BEFORE" 'BEGIN { print a - b }')
JOINS=$(metric "$C" xs3_collapsed_joins_total)
SUM=$(curl -sS -H "X-Xs3lerator-Cache-Key: bench/fifty" "$C/$FIFTY" | sha256sum | cut -c1-64)
[ "$SUM" = "$(curl -sS "$ORIGIN/object/$COLLAPSE_SIZE?seed=2" | sha256sum | cut -c1-64)" ] || { echo "(c) differs" >&2; exit 1; }
echo "one client alone:                                ${ONE_S}s"
echo "50 clients at once:                              ${FIFTY_S}s, upstream downloads $DOWNLOADS, joins $JOINS, incomplete bodies $BAD"
C_RSS=$(peak_rss "$C_PID")

echo "== ratios"
awk -v d="$BEST_DIRECT" -v h="$BEST_HIT" 'BEGIN { printf "(a) disk-cache hit / curl from origin:  %.2f (aim >= 0.8)\n", d / h }'
awk -v one="${B_S[1]}" -v eight="${B_S[8]}" 'BEGIN { printf "(b) S3 read-ahead 8 / read-ahead 1:    %.2fx (aim >= 4)\n", one / eight }'
awk -v one="$ONE_S" -v fifty="$FIFTY_S" -v n="$DOWNLOADS" 'BEGIN { printf "(c) 50 clients / one client:           %.2fx with %d upstream download(s) (aim <= 1.5, exactly 1)\n", fifty / one, n }'
echo "(d) peak RSS: (a) $A_RSS MiB, (b) ${B_RSS[1]} / ${B_RSS[8]} MiB, (c) $C_RSS MiB (aim < 256)"
