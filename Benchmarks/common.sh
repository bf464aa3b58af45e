# Shared by the benchmark scripts (sourced, not run).

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
