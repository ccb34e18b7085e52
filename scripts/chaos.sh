#!/usr/bin/env bash
# Chaos run: exactly-once effects with the transactional inbox (PgInbox) against
# qstash-dedupe's Redis dedupe layer, side by side. Not part of the unit tests (minutes long).
#
#   scripts/chaos.sh                 # RUNS=3 MESSAGES=500 COPIES=3 KILL_MIN=0.05 KILL_MAX=0.5
#
# For each run and each mode (INBOX_MODE=postgres, INBOX_MODE=redis) of
# examples/postgres_receiver.rs: MESSAGES messages, each sent COPIES times at once with fresh
# tokens, the receiver killed with SIGKILL every KILL_MIN..KILL_MAX seconds and restarted,
# every message not yet answered 2xx sent again until it is; then the rows per message in
# `orders` (no unique key) are counted. Prints one JSON line per run and mode; exits 1 when
# the inbox doubled or lost an effect.
#
# Installs PostgreSQL (scripts/postgres.sh) and redis-server when missing (Debian, as root).
# PROFILE=release builds the example optimised (default: debug).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-3}"
messages="${MESSAGES:-500}"
copies="${COPIES:-3}"
profile="${PROFILE:-debug}"
target="${CARGO_TARGET_DIR:-target}"

scripts/postgres.sh install
if ! command -v redis-server >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

release_flag=()
[ "$profile" = release ] && release_flag=(--release)
cargo build -j 2 "${release_flag[@]}" -p qstash-examples --example postgres_receiver
binary="$target/$profile/examples/postgres_receiver"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work="$(mktemp -d)"
chmod 755 "$work" # the cluster runs as the postgres user when this runs as root
redis_pid=""
cleanup() {
    if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi
    scripts/postgres.sh stop "$work/pg"
    rm -rf "$work"
}
trap cleanup EXIT

database_url="$(scripts/postgres.sh start "$work/pg" "$(free_port)")"
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis_pid=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
    sleep 0.05
done

status=0
for run in $(seq 1 "$runs"); do
    for mode in postgres redis; do
        line="$(python3 scripts/chaos/driver.py --binary "$binary" --mode "$mode" \
            --database-url "$database_url" --redis-url "redis://127.0.0.1:$redis_port/" \
            --port "$(free_port)" --messages "$messages" --copies "$copies" \
            --kill-min "${KILL_MIN:-0.05}" --kill-max "${KILL_MAX:-0.5}" --seed "$run")"
        echo "run $run: $line"
        if [ "$mode" = postgres ] && ! python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r["doubled"] == 0 and r["lost"] == 0 and r["answered_2xx"] == r["messages"] else 1)' "$line"; then
            echo "run $run: the inbox doubled or lost an effect" >&2
            status=1
        fi
    done
done
exit "$status"
