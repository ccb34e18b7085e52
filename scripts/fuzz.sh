#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, each for a bounded time, and prints
# how many inputs each executed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      SECONDS per target (default 600);
#                                              targets default to: verify callback delivery
#
# Prerequisites:
#   - Rust (stable is enough) and a C++ compiler (libfuzzer-sys builds libFuzzer from source).
#   - cargo-fuzz: `cargo install cargo-fuzz` (the script installs it when missing).
#   cargo-fuzz passes `-Zsanitizer=address`; on a stable toolchain the script sets
#   RUSTC_BOOTSTRAP=1 to allow it, and falls back to `--sanitizer none` if that build fails.
#
# Environment:
#   FUZZ_TARGET_DIR   cargo target dir for the fuzz build (default: fuzz/target, git-ignored)
#   FUZZ_NICE         niceness of the fuzzers (default 19: the build machine is shared)
#   FUZZ_JOBS_ARGS    extra libFuzzer arguments
#
# Corpora grow in fuzz/corpus/TARGET and crashing inputs land in fuzz/artifacts/TARGET (both
# git-ignored). A crash makes the script exit non-zero after the remaining targets ran; turn
# each crashing input into a test in crates/qstash-receiver/tests/fuzz_regressions.rs.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(verify callback delivery)
target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
niceness=${FUZZ_NICE:-19}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz || { echo "cargo-fuzz could not be installed" >&2; exit 2; }
fi

export RUSTC_BOOTSTRAP=1
sanitizer=()
echo "== building fuzz targets (target dir $target_dir)"
mkdir -p "$target_dir"
if ! nice -n "$niceness" cargo fuzz build --target-dir "$target_dir" >/dev/null 2>"$target_dir/build.log"; then
    echo "build with the address sanitizer failed (see $target_dir/build.log); retrying with --sanitizer none"
    sanitizer=(--sanitizer none)
    nice -n "$niceness" cargo fuzz build "${sanitizer[@]}" --target-dir "$target_dir" || exit 2
fi

declare -A max_len=([verify]=8192 [callback]=4096 [delivery]=4096)
status=0
summary=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
    dict=()
    [ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
    log="fuzz/artifacts/$target/run.log"
    echo "== $target: ${seconds}s (log: $log)"
    start=$(date +%s)
    # shellcheck disable=SC2086 # FUZZ_JOBS_ARGS is a list of arguments
    nice -n "$niceness" cargo fuzz run "${sanitizer[@]}" --target-dir "$target_dir" "$target" \
        "$corpus" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=25 -max_len="${max_len[$target]:-4096}" \
        -print_final_stats=1 "${dict[@]}" ${FUZZ_JOBS_ARGS:-} >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
    [ -z "$execs" ] && execs=$(grep -Eo '^Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        verdict="no crash"
    else
        verdict="CRASH (rc $rc): $(grep -Eo 'Test unit written to [^ ]+' "$log" | tail -1)"
        status=1
    fi
    line="$target: ${execs:-?} executions in ${elapsed}s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs, $verdict"
    echo "$line"
    summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$status"
