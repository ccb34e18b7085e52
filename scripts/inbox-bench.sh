#!/usr/bin/env bash
# Deliveries per second of examples/postgres_receiver.rs with the transactional inbox
# (INBOX_MODE=postgres) against the same handler without it (INBOX_MODE=none: the same insert
# in its own transaction), in the same run, alternating: none, postgres, none, postgres, ...
# Every request is a distinct, validly signed delivery (own message id, own token), so the
# inbox never answers from a stored mark. Not part of CI.
#
#   scripts/inbox-bench.sh     # ROUNDS=2 DURATION=10s CONNECTIONS=32 THREADS=2 POOL=16
#
# Prints wrk's figures per round and mode, the CPU time each process spent per delivery
# (cpu_us: the receiver, PostgreSQL's server processes, wrk; a figure the machine's other load
# moves less than the rate), and the ratio postgres / none per round. The
# PostgreSQL cluster runs with its defaults (fsync on, synchronous_commit on) unless
# PG_SETTINGS adds `-c name=value` options, e.g. PG_SETTINGS="-c synchronous_commit=off".
# PROFILE=debug builds the example unoptimised (default: release). BEFORE_BINARY=path adds a
# third run per round, `before`: that build of the example in mode postgres (e.g. a copy of
# the binary built from the previous commit), to compare two versions of the inbox in one run.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${ROUNDS:-2}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-32}"
threads="${THREADS:-2}"
pool="${POOL:-16}"
count="${COUNT:-100000}"
profile="${PROFILE:-release}"
target="${CARGO_TARGET_DIR:-target}"

scripts/postgres.sh install
command -v wrk >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
release_flag=()
[ "$profile" = release ] && release_flag=(--release)
cargo build -j 2 "${release_flag[@]}" -p qstash-examples --example postgres_receiver
binary="$target/$profile/examples/postgres_receiver"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work="$(mktemp -d)"
chmod 755 "$work" # the cluster runs as the postgres user when this runs as root
receiver_pid=""
cleanup() {
    if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
    scripts/postgres.sh stop "$work/pg"
    rm -rf "$work"
}
trap cleanup EXIT

pg_port="$(free_port)"
database_url="$(scripts/postgres.sh start "$work/pg" "$pg_port")"
if [ -n "${PG_SETTINGS:-}" ]; then
    for setting in ${PG_SETTINGS//-c /}; do
        psql "$database_url" -qc "ALTER SYSTEM SET ${setting%%=*} = '${setting#*=}'"
    done
    psql "$database_url" -qc "SELECT pg_reload_conf()" >/dev/null
fi
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) on $(nproc) CPUs before the run"

ticks="$(getconf CLK_TCK)"
postmaster="$(head -1 "$work/pg/data/postmaster.pid")"
# CPU ticks of the cluster: the postmaster with its reaped children (the backends of closed
# connections) and its live children.
pg_ticks() {
    local t child
    t="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")"
    for child in $(pgrep -P "$postmaster"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
pg_children="$(pgrep -c -P "$postmaster")"
per_delivery() { # TICKS REQUESTS: microseconds per delivery
    python3 -c 'import sys; print(round(int(sys.argv[1]) * 1e6 / int(sys.argv[2]) / int(sys.argv[3])))' \
        "$1" "$ticks" "$2"
}

labels="none postgres"
if [ -n "${BEFORE_BINARY:-}" ]; then labels="none before postgres"; fi

declare -A total
for round in $(seq 1 "$rounds"); do
    for label in $labels; do
        mode="$label" run="$binary"
        if [ "$label" = before ]; then mode=postgres run="$BEFORE_BINARY"; fi
        port="$(free_port)"
        python3 scripts/inbox-bench/requests.py "http://127.0.0.1:$port/api/webhook" "$count" \
            "msg_${label}_${round}_" >"$work/requests.tsv"
        QSTASH_DEV=1 PORT="$port" DATABASE_URL="$database_url" INBOX_MODE="$mode" \
            DATABASE_POOL="$pool" RUST_LOG=off "$run" >/dev/null 2>&1 &
        receiver_pid=$!
        for _ in $(seq 1 200); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
            sleep 0.05
        done
        pg_before="$(pg_ticks)"
        # `time` gives wrk's own CPU seconds (user and system).
        { TIMEFORMAT='%U %S' && time REQUESTS="$work/requests.tsv" THREADS="$threads" \
            wrk -t "$threads" -c "$connections" -d "$duration" \
            -s scripts/inbox-bench/deliveries.lua "http://127.0.0.1:$port/api/webhook" \
            >"$work/wrk.out"; } 2>"$work/wrk.time"
        result="$(grep '^RESULT' "$work/wrk.out")"
        receiver_ticks="$(awk '{print $14 + $15}' "/proc/$receiver_pid/stat")"
        kill "$receiver_pid" && wait "$receiver_pid" 2>/dev/null || true
        receiver_pid=""
        # The pool's backends exit with the receiver; wait until the postmaster reaped them.
        for _ in $(seq 1 100); do
            if [ "$(pgrep -c -P "$postmaster")" -le "$pg_children" ]; then break; fi
            sleep 0.05
        done
        pg_used=$(($(pg_ticks) - pg_before))
        requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")"
        wrk_ticks="$(awk -v t="$ticks" '{printf "%d", ($1 + $2) * t}' "$work/wrk.time")"
        cpu="cpu_us: receiver=$(per_delivery "$receiver_ticks" "$requests")"
        cpu="$cpu postgres=$(per_delivery "$pg_used" "$requests")"
        cpu="$cpu wrk=$(per_delivery "$wrk_ticks" "$requests")"
        rows="$(psql "$database_url" -Atc "SELECT count(*) FROM orders WHERE message_id LIKE 'msg_${label}_${round}_%'")"
        echo "round $round $label: ${result#RESULT } rows=$rows $cpu load=$(cut -d' ' -f1 /proc/loadavg)"
        rps="$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$result")"
        total["$round,$label"]="$rps"
    done
    for label in $labels; do
        if [ "$label" = none ]; then continue; fi
        python3 -c 'import sys; print(f"round {sys.argv[1]}: {sys.argv[2]} / none = {int(sys.argv[3]) / int(sys.argv[4]):.2f}")' \
            "$round" "$label" "${total[$round,$label]}" "${total[$round,none]}"
    done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) after the run"
