#!/usr/bin/env bash
# Requests per second of the example receivers' verified routes against bare routes of the
# same handler, over HTTP on loopback, in one run. Not part of CI: a developer runs it on a
# quiet Debian machine (it needs the cores to itself to say anything about a few percent).
#
#   scripts/http-ratio.sh          # ROUNDS=3 DURATION=10s CONNECTIONS=64 THREADS=2
#
# For each framework (FRAMEWORKS, default "axum actix") one server (bench/http-ratio) serves
# these routes, in release mode:
#   verified  POST /api/webhook: the example's own route (examples/axum_receiver.rs: its router
#             behind QStashLayer; examples/actix_receiver.rs: its handler with the QStash<Order>
#             extractor);
#   bare      POST /api/bare: the same handler logic (the example's Inbox, the same echo) with
#             the framework's plain JSON extractor and no verification;
#   noop-layer (axum only) POST /api/noop-layer: the bare route behind a middleware that does
#             nothing (`axum::middleware::from_fn`), for what any middleware costs a request.
# wrk (THREADS threads, CONNECTIONS keep-alive connections, the same for both) sends a pool of
# POOL deliveries, each a 1024-byte JSON Order with its own message id, validly signed (the
# dev key) for the route's URL; the pool is signed right before each wrk run, so no token
# expires whatever DURATION is. After WARMUP on each route (not counted), ROUNDS rounds of
# the routes in turn (bare, [noop-layer,] verified, bare, ...) each DURATION long. Printed per run and summed up per
# framework: wrk's requests/s, and the server's CPU time per request (utime + stime of the
# server process from /proc, over wrk's requests: load-independent where requests/s is not,
# and undiluted by wrk's own cost on the same cores); then the medians, verified / bare, and
# the extra CPU time per request. `uptime` before and after.
#
# Every answer must be 200 (wrk counts the others, and socket errors): the script exits 1
# when one was not. It does not judge the ratio; DESIGN §4's target is 0.92x.
#
# PERF=1 also records the server with `perf record -e cpu-clock -g` during each run of the
# last round (files perf-FRAMEWORK-ROUTE.data in the work directory, kept and printed).
#
# Needs: cargo, python3, wrk (installed with apt-get when missing; as root, else sudo).
# Builds in $CARGO_TARGET_DIR (default target/), with `-j 2`.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
POOL=${POOL:-1000}
FRAMEWORKS=${FRAMEWORKS:-axum actix}
PERF=${PERF:-0}
target=${CARGO_TARGET_DIR:-target}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v cargo >/dev/null || { echo "error: cargo not found: install Rust first" >&2; exit 2; }
command -v python3 >/dev/null || apt_install python3
command -v wrk >/dev/null || apt_install wrk
if [ "$PERF" = 1 ]; then command -v perf >/dev/null || apt_install linux-perf; fi

cargo build -j 2 --release -p qstash-http-ratio --examples
bin_dir="$target/release/examples"

work=$(mktemp -d "${TMPDIR:-/tmp}/http-ratio.XXXXXX")
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    stop_server
    if [ "$PERF" = 1 ]; then echo "perf data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the server so far, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$server_pid/stat"
}

# run FRAMEWORK ROUTE ROUND DURATION: one wrk run; ROUND "warmup" is not recorded
run() {
    local framework=$1 route=$2 round=$3 duration=$4 path result before after perf_pid=""
    case "$route" in
        verified) path=/api/webhook ;;
        noop-layer) path=/api/noop-layer ;;
        *) path=/api/bare ;;
    esac
    local url="http://127.0.0.1:$port$path"
    python3 bench/http-ratio/sign.py "$url" "$POOL" >"$work/requests.tsv"
    if [ "$PERF" = 1 ] && [ "$round" = "$ROUNDS" ]; then
        perf record -q -e cpu-clock -g -p "$server_pid" -o "$work/perf-$framework-$route.data" \
            >/dev/null 2>&1 &
        perf_pid=$!
    fi
    before=$(cpu_ticks)
    result=$(REQUESTS="$work/requests.tsv" wrk -t "$THREADS" -c "$CONNECTIONS" -d "$duration" \
        -s bench/http-ratio/requests.lua "$url" | grep '^RESULT ') ||
        { echo "error: wrk gave no result for $url" >&2; exit 1; }
    after=$(cpu_ticks)
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    local cpu_us
    cpu_us=$(python3 -c 'import sys; t, hz, line = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
n = int(dict(f.split("=") for f in line.split()[1:])["requests"])
print(f"{t / hz * 1e6 / n:.2f}" if n else "nan")' "$((after - before))" "$clk_tck" "$result")
    echo "$framework $route round=$round ${result#RESULT } server_cpu_us_per_request=$cpu_us"
    if [ "$round" != warmup ]; then
        echo "$framework $route $round ${result#RESULT } cpu_us=$cpu_us" >>"$work/results"
    fi
}

echo "uptime before: $(uptime)"
echo "$(nproc) CPUs; $(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }'); $(rustc --version)"
echo "wrk -t $THREADS -c $CONNECTIONS, $ROUNDS rounds of $DURATION per route (after $WARMUP of warm-up each), pool of $POOL signed 1 KiB deliveries"
: >"$work/results"
for framework in $FRAMEWORKS; do
    port=$(free_port)
    QSTASH_DEV=1 PORT=$port "$bin_dir/$framework-ratio" >"$work/server-$framework.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        grep -q "listening on" "$work/server-$framework.log" && break
        kill -0 "$server_pid" 2>/dev/null ||
            { cat "$work/server-$framework.log" >&2; echo "error: $framework-ratio exited" >&2; exit 1; }
        sleep 0.1
    done
    grep -q "listening on" "$work/server-$framework.log" ||
        { echo "error: $framework-ratio did not start within 30 s" >&2; exit 1; }
    routes="bare verified"
    if [ "$framework" = axum ]; then routes="bare noop-layer verified"; fi
    for route in $routes; do run "$framework" "$route" warmup "$WARMUP"; done
    for round in $(seq 1 "$ROUNDS"); do
        for route in $routes; do run "$framework" "$route" "$round" "$DURATION"; done
    done
    stop_server
done
echo "uptime after: $(uptime)"

python3 - "$work/results" <<'PY'
import statistics, sys
runs = {}
failed = []
for line in open(sys.argv[1]):
    framework, route, rnd, *fields = line.split()
    f = dict(x.split("=") for x in fields)
    runs.setdefault((framework, route), []).append((int(rnd), float(f["rps"]), float(f["cpu_us"])))
    if int(f["bad_status"]) or int(f["socket_errors"]):
        failed.append(f"{framework} {route} round {rnd}: {f['bad_status']} answers >= 400, {f['socket_errors']} socket errors")
print()
print(f"{'framework':<9} {'route':<9} {'requests/s per round':<30} {'median':>9}   {'server CPU µs/request per round':<26} {'median':>6}")
for framework in dict.fromkeys(k[0] for k in runs):
    med = {}
    for route in [r for r in ("bare", "noop-layer", "verified") if (framework, r) in runs]:
        rows = sorted(runs[(framework, route)])
        rps = [r[1] for r in rows]
        cpu = [r[2] for r in rows]
        med[route] = (statistics.median(rps), statistics.median(cpu))
        print(f"{framework:<9} {route:<10} {', '.join(f'{x:,.0f}' for x in rps):<29} {med[route][0]:>9,.0f}   "
              f"{', '.join(f'{x:.2f}' for x in cpu):<26} {med[route][1]:>6.2f}")
    bare = dict((r[0], r[1]) for r in runs[(framework, "bare")])
    per_round = [v / bare[n] for n, v, _ in sorted(runs[(framework, "verified")]) if n in bare]
    ratio = med["verified"][0] / med["bare"][0]
    extra = med["verified"][1] - med["bare"][1]
    print(f"{framework:<9} verified / bare: {ratio:.3f}x of the requests/s (medians; per round "
          f"{', '.join(f'{x:.3f}' for x in per_round)}); server CPU +{extra:.2f} µs per request "
          f"({med['verified'][1] / med['bare'][1]:.3f}x)")
    if "noop-layer" in med:
        print(f"{framework:<9} noop-layer / bare: {med['noop-layer'][0] / med['bare'][0]:.3f}x of the requests/s; "
              f"server CPU +{med['noop-layer'][1] - med['bare'][1]:.2f} µs per request: what a middleware that "
              f"does nothing costs")
if failed:
    print("\nFAILED: not every answer was 200:\n  " + "\n  ".join(failed))
    sys.exit(1)
PY
