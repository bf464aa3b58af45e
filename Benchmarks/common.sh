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
