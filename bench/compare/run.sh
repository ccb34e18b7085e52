#!/usr/bin/env bash
# Side-by-side comparison of QStash receivers, in one run: our core (crates/qstash-receiver),
# the official TypeScript receiver (npm `@upstash/qstash`), the official Python receiver (PyPI
# `qstash`) and the crates.io crate `qstash-rs`. Checks each against the same cases (QStash's
# real tokens and the core crate's bypass table), times one verification of a valid token with
# a 1 KiB body in each, and writes BENCHMARKS.md at the repository root.
#
#   bench/compare/run.sh            (from anywhere; takes about 2 minutes after the builds)
#
# Prerequisites:
#   - bash, Rust (stable cargo), Node.js >= 18 with npm, Python >= 3.9 with pip;
#   - network access to crates.io, the npm registry and PyPI on the first run (installs go into
#     bench/compare/ts/node_modules, bench/compare/py/.deps and the cargo target dir, all
#     git-ignored);
#   - optional: `faketime` (Debian: apt-get install faketime). qstash-rs reads the system clock
#     and takes no injected time; with faketime its verdicts on the time-dependent cases (all
#     of them: the real tokens and the table are signed at fixed past instants) are measured
#     under a frozen `faketime` clock set to each case's instant. Without it, those verdicts are reported as "n/a (no clock
#     injection)".
#
# Environment:
#   COMPARE_TARGET_DIR  cargo target dir (default: bench/compare/target)
#   COMPARE_ROUNDS      timing rounds; each round times every implementation once, in turn
#                       (default 3); the reported time is the median of the rounds' medians
#   COMPARE_MILLIS      measuring time per implementation and round, ms (default 3000)
#   COMPARE_NICE        niceness of builds and measurements (default 19: shared machine)
#   VECTORS             the real-token file (default: ../shared/vectors/real-tokens.json
#                       beside the repository if present, else the copy in
#                       crates/qstash-receiver/tests/data/real-tokens.json)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

TS_VERSION=2.12.0   # keep in step with ts/package.json
PY_VERSION=3.4.0
target_dir=${COMPARE_TARGET_DIR:-$here/target}
rounds=${COMPARE_ROUNDS:-3}
millis=${COMPARE_MILLIS:-3000}
niceness=${COMPARE_NICE:-19}
out=$here/out
run() { nice -n "$niceness" "$@"; }

vectors=${VECTORS:-}
if [ -z "$vectors" ]; then
    if [ -f "$root/../shared/vectors/real-tokens.json" ]; then
        vectors=$root/../shared/vectors/real-tokens.json
    else
        vectors=$root/crates/qstash-receiver/tests/data/real-tokens.json
    fi
fi

echo "== 1. install"
for tool in cargo node npm python3; do
    command -v "$tool" >/dev/null || { echo "missing prerequisite: $tool" >&2; exit 2; }
done
(cd ts && if [ -f package-lock.json ]; then run npm ci --no-audit --no-fund; else run npm install --no-audit --no-fund; fi) >/dev/null
installed_ts=$(node -p "require('./ts/node_modules/@upstash/qstash/package.json').version")
[ "$installed_ts" = "$TS_VERSION" ] || { echo "@upstash/qstash $installed_ts installed, expected $TS_VERSION" >&2; exit 2; }
if [ ! -d "py/.deps/qstash-$PY_VERSION.dist-info" ]; then
    rm -rf py/.deps
    run python3 -m pip install --quiet --disable-pip-version-check --target py/.deps "qstash==$PY_VERSION"
fi
export CARGO_TARGET_DIR=$target_dir
(cd cases && run cargo build --release --quiet)
(cd qstash-rs-bench && run cargo build --release --quiet)
cases_bin=$target_dir/release/qstash-compare-cases
qrs_bin=$target_dir/release/qstash-rs-bench
ts() { run node ts/check.mjs "$@"; }
py() { PYTHONPATH=py/.deps run python3 py/check.py "$@"; }

echo "== 2. cases (real tokens from $vectors)"
rm -rf "$out" && mkdir -p "$out"
"$cases_bin" cases --real "$vectors" --out "$out/cases.json"

echo "== 3. verdicts"
"$cases_bin" check --cases "$out/cases.json" --out "$out/check-core.json"
ts check "$out/cases.json" "$out/check-ts.json"
py check "$out/cases.json" "$out/check-py.json"
if command -v faketime >/dev/null; then
    mkdir -p "$out/qstash-rs"
    for now in $(python3 -c 'import json,sys; print(*sorted({c["now"] for c in json.load(open(sys.argv[1]))}))' "$out/cases.json"); do
        # A frozen clock (no "@"): the instant stays T however long the process takes.
        TZ=UTC faketime -f "$(date -u -d "@$now" '+%Y-%m-%d %H:%M:%S')" "$qrs_bin" check --cases "$out/cases.json" --only-now "$now" --out "$out/qstash-rs/$now.json"
    done
    python3 - "$out" <<'EOF'
import glob, json, sys
out = sys.argv[1]
parts = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/qstash-rs/*.json"))]
merged = dict(parts[0], results=[r for p in parts for r in p["results"]])
json.dump(merged, open(f"{out}/check-qstash-rs.json", "w"), indent=2)
EOF
else
    echo "faketime not found: qstash-rs verdicts are n/a (no clock injection)"
    python3 - "$out" <<'EOF'
import json, sys
out = sys.argv[1]
cases = json.load(open(f"{out}/cases.json"))
json.dump({"implementation": "qstash-rs 0.6.0 (crates.io)", "clock": "none (faketime missing)",
           "results": [{"name": c["name"], "verdict": "n/a", "detail": "no clock injection"} for c in cases]},
          open(f"{out}/check-qstash-rs.json", "w"), indent=2)
EOF
fi

echo "== 4. timing: $rounds rounds x each implementation x ${millis} ms, in turn"
{
    echo "{"
    echo "\"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\","
    echo "\"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')\","
    echo "\"cores\": $(nproc),"
    echo "\"sha_ni\": $(grep -qw sha_ni /proc/cpuinfo && echo true || echo false),"
    echo "\"load_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
    echo "\"rustc\": \"$(rustc --version)\","
    echo "\"node\": \"$(node --version)\","
    echo "\"python\": \"$(python3 --version 2>&1)\","
    echo "\"rounds\": $rounds, \"millis\": $millis, \"nice\": $niceness,"
    echo "\"faketime\": $(command -v faketime >/dev/null && echo true || echo false),"
    echo "\"vectors\": \"$(realpath --relative-to="$root" "$vectors")\","
} >"$out/env.partial"
for round in $(seq 1 "$rounds"); do
    impls="core ts py qstash-rs"
    # Node runs WebCrypto's digest on libuv's thread pool, so the TypeScript receiver's time
    # depends on cross-CPU hand-offs; it is also timed with the process on one CPU.
    command -v taskset >/dev/null && impls="$impls ts-pinned"
    for impl in $impls; do
        # A fresh token for each measurement (a token lives 300 s): no clock injection needed.
        "$cases_bin" bench-token --out "$out/bench.json"
        case $impl in
            core) run "$cases_bin" time --bench "$out/bench.json" --out "$out/time-core-$round.json" --millis "$millis" ;;
            ts) ts time "$out/bench.json" "$out/time-ts-$round.json" "$millis" ;;
            ts-pinned) taskset -c 0 nice -n "$niceness" node ts/check.mjs time "$out/bench.json" "$out/time-ts-pinned-$round.json" "$millis" ;;
            py) py time "$out/bench.json" "$out/time-py-$round.json" "$millis" ;;
            qstash-rs) run "$qrs_bin" time --bench "$out/bench.json" --out "$out/time-qstash-rs-$round.json" --millis "$millis" ;;
        esac
        echo "round $round $impl: $(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["median_ns"]), "ns")' "$out/time-$impl-$round.json")"
    done
done
{
    cat "$out/env.partial"
    echo "\"load_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\""
    echo "}"
} >"$out/env.json"

echo "== 5. report"
python3 report.py "$out" "$root/BENCHMARKS.md"
echo "wrote $root/BENCHMARKS.md"
