#!/usr/bin/env bash
# Instructions per request of the example receivers' verified routes and their bare routes,
# under callgrind: a figure that does not move with the machine's load (scripts/http-ratio.sh
# measures requests per second). Callgrind runs SHA-256 in software, so the verified route's
# difference includes about 80,000 instructions of SHA-256 (the floor, in software) that the
# hardware does in about 1 µs. For axum also the bare route behind a middleware that does
# nothing (noop-layer: what being a middleware costs). Not part of CI.
#
#   scripts/http-instructions.sh     # FRAMEWORKS="axum actix" DURATION=4s POOL=400
#
# Needs cargo, python3, wrk and valgrind (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4s}
POOL=${POOL:-400}
FRAMEWORKS=${FRAMEWORKS:-axum actix}
target=${CARGO_TARGET_DIR:-target}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need() {
    command -v "$1" >/dev/null && return
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need wrk wrk
need valgrind valgrind
need python3 python3

cargo build -j 2 --release -p qstash-http-ratio --examples
work=$(mktemp -d "${TMPDIR:-/tmp}/http-instructions.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
total_ir() { # the instructions in callgrind's dump files so far
    cat "$work"/cg.out.* 2>/dev/null | awk '/^summary:/ { s += $2 } END { print s + 0 }'
}

for framework in $FRAMEWORKS; do
    port=$(free_port)
    rm -f "$work"/cg.out.*
    QSTASH_DEV=1 PORT=$port valgrind --tool=callgrind --callgrind-out-file="$work/cg.out.%p" \
        "$target/release/examples/$framework-ratio" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do
        grep -q "listening on" "$work/server.log" && break
        sleep 0.1
    done
    grep -q "listening on" "$work/server.log" || { cat "$work/server.log" >&2; exit 1; }
    routes="bare verified bare verified"
    if [ "$framework" = axum ]; then routes="bare noop-layer verified bare noop-layer verified"; fi
    for route in $routes; do
        case "$route" in
            verified) path=/api/webhook ;;
            noop-layer) path=/api/noop-layer ;;
            *) path=/api/bare ;;
        esac
        url="http://127.0.0.1:$port$path"
        python3 bench/http-ratio/sign.py "$url" "$POOL" >"$work/requests.tsv"
        callgrind_control -z "$server_pid" >/dev/null
        result=$(REQUESTS="$work/requests.tsv" wrk -t 1 -c 4 -d "$DURATION" \
            -s bench/http-ratio/requests.lua "$url" | grep '^RESULT ')
        rm -f "$work"/cg.out.*
        callgrind_control -d "$server_pid" >/dev/null
        sleep 1
        requests=$(echo "$result" | tr ' ' '\n' | awk -F= '$1 == "requests" { print $2 }')
        ir=$(total_ir)
        echo "$framework $route requests=$requests instructions_per_request=$((ir / requests))"
    done
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
done
