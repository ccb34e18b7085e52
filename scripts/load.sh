#!/usr/bin/env bash
# Hostile-traffic load test of the axum example receiver (examples/axum_receiver.rs, behind
# tower-qstash's QStashLayer). Not part of CI: a developer runs it on a Debian machine.
#
#   scripts/load.sh
#
# Phases (each one checked; the script exits 1 when any check fails, after all ran):
#   A0  wrk, one connection per thread, a few seconds: the fixed mix of valid (current and
#       next key), invalid (no signature, garbage token, tampered body, token for another
#       path) and oversize (2 MiB with its Content-Length) deliveries; each response is
#       matched to its request, so every class's status is checked exactly
#       (200 / 401 / 413).
#   A1  wrk, THREADS x CONNECTIONS for DURATION: the same mix, counted per status; no status
#       outside 200/401/413, every 200 echoes a valid delivery's message id, and the
#       counts per class add up.
#   A2  the same without the oversize requests (each 413 costs wrk its connection; see the
#       notes printed with A1), for throughput and latency figures of the verification path.
#   B1  CONNECTIONS oversize uploads of 2 MiB sent chunked (no Content-Length): 413 mid-stream.
#   B2  CONNECTIONS valid deliveries of exactly 1 MiB (the limit), all in flight at once: 200.
#       (B1 runs first: B2's deliveries stay in the example's Inbox, and the allocator reuses
#       B2's freed buffers, either of which would hide B1's peak.)
#   C   TRICKLE_CONNECTIONS connections that send valid headers (Content-Length: 1048576)
#       and then 1 byte a second: 64 of them (the buffer budget: each holds its 1 MiB until
#       its body is read or timed out) must get 408 within 15 s (the body timeout, 10 s by
#       default), the others 503 with Retry-After within 1 s. The client gives up after 30 s.
#   D   (runs between A2 and B1, before any large body was buffered, so that no freed buffer
#       hides growth) six runs of JUNK_CONNECTIONS concurrent connections, each declaring
#       Content-Length: 1048576 and writing 1 MiB - 1 of body: with `Upstash-Signature:
#       junk.junk.junk`, with no signature, and with a well-formed token for the right URL
#       signed with a key that is not configured; each written at once (64 KiB writes back
#       to back) and slowly (16 KiB every 50 ms). Each must get 401 with Connection: close,
#       answered without the body being read (the client reads the answer while writing; a
#       write error after it is counted, not a failure), and the receiver's peak RSS in each
#       run must stay within JUNK_GROWTH_MIB of its RSS before D.
#   E   (a fresh receiver) BUDGET_DELIVERIES valid 1 MiB deliveries at once, more than the
#       default buffer budget (64 bodies of the limit) holds: each sends its head and half
#       its body, all wait until every one did (and 1 s more), then the admitted ones send
#       the rest. Exactly 64 must get 200 (each echoing its delivery), the others 503 with
#       Retry-After before the rest of their body was sent; peak RSS within 2 x 64 x limit
#       + 16 MiB.
#   F1  (a fresh receiver started under `ulimit -n SLOW_NOFILE`) SLOW_CONNECTIONS connections
#       dripping a header (a byte a second), F2 as many sending a whole head but its final
#       CRLF and then nothing, F3 as many sending one valid delivery and then idling on the
#       keep-alive connection; meanwhile a valid delivery every SLOW_EVERY s for
#       SLOW_DURATION s, each on a new connection. Every valid delivery must get 200 within
#       20 s (latency p50/max reported: those sent while the slow connections hold every
#       descriptor wait for the header-read timeout to free some), and the receiver must
#       close every slow connection within SLOW_CLOSE_LIMIT s of its connect (5 s header
#       read timeout; connections queued in the backlog start their 5 s when accepted).
#       The client gives up on a slow connection after 30 s.
# The receiver's VmRSS and VmHWM are read after start and after each phase; VmHWM is reset
# before each phase (/proc/PID/clear_refs), so it is that phase's peak. Each phase is
# bounded in count and time and uses 127.0.0.1 only.
#
# Needs: cargo, python3 (standard library), wrk (installed with apt-get when missing; sudo
# when not root). Builds the release binaries in $CARGO_TARGET_DIR (default: target/).
#
# Environment:
#   DURATION             wrk duration of A1 and A2 (default 20s)
#   CONNECTIONS          wrk connections of A1/A2, and concurrent uploads of B1/B2 (default 64)
#   THREADS              wrk threads (default 2)
#   TRICKLE_CONNECTIONS  connections of phase C (default 200)
#   EXACT_DURATION       duration of A0 (default 5s)
#   TRICKLE_LIMIT        seconds within which phase C must get its 408s (default 15)
#   TRICKLE_CAP          seconds phase C's client waits at most (default 30)
#   JUNK_CONNECTIONS     connections of each run of phase D (default 120)
#   JUNK_GROWTH_MIB      phase D's bound on the peak RSS over the RSS before D (default 8)
#   BUDGET_DELIVERIES    deliveries of phase E (default 100; more than 64)
#   SLOW_CONNECTIONS     slow connections of each of F1-F3 (default 80)
#   SLOW_NOFILE          the open-file limit of phase F's receiver (default 64)
#   SLOW_EVERY           seconds between phase F's valid deliveries (default 0.2)
#   SLOW_DURATION        seconds of phase F's valid deliveries, per kind (default 15)
#   SLOW_CLOSE_LIMIT     seconds within which each slow connection must be closed (default 15)
#   SKIP_BUILD=1         use the binaries already built
# Files (bodies, tokens, the receiver's log, each phase's output) stay in a temporary
# directory whose path is printed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
here="$root/scripts/load"

DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TRICKLE_CONNECTIONS=${TRICKLE_CONNECTIONS:-200}
EXACT_DURATION=${EXACT_DURATION:-5s}
CURRENT_KEY=sig_load_current
NEXT_KEY=sig_load_next
WRONG_KEY=sig_load_not_configured
JUNK_CONNECTIONS=${JUNK_CONNECTIONS:-120}
JUNK_GROWTH_MIB=${JUNK_GROWTH_MIB:-8}
BUDGET_DELIVERIES=${BUDGET_DELIVERIES:-100}
BUDGET_BODIES=64 # the receiver's default buffer budget, in body limits (DEFAULT_BUDGET_BODIES)
SLOW_CONNECTIONS=${SLOW_CONNECTIONS:-80}
SLOW_NOFILE=${SLOW_NOFILE:-64}
SLOW_EVERY=${SLOW_EVERY:-0.2}
SLOW_DURATION=${SLOW_DURATION:-15}
SLOW_CLOSE_LIMIT=${SLOW_CLOSE_LIMIT:-15}
LIMIT=1048576
TRICKLE_LIMIT_S=${TRICKLE_LIMIT:-15}
TRICKLE_CAP_S=${TRICKLE_CAP:-30}

section() { printf '\n==== %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------------------------------
section "prerequisites"
apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
command -v python3 >/dev/null || { echo "installing python3"; apt_install python3; }
command -v wrk >/dev/null || { echo "installing wrk"; apt_install wrk; }
[ "$THREADS" -le "$CONNECTIONS" ] || die "THREADS ($THREADS) must not exceed CONNECTIONS ($CONNECTIONS)"
[ "$BUDGET_DELIVERIES" -gt "$BUDGET_BODIES" ] || die "BUDGET_DELIVERIES ($BUDGET_DELIVERIES) must exceed the budget ($BUDGET_BODIES)"
echo "$(wrk -v 2>&1 | head -n1 | awk '{ print $1, $2 }'); $(python3 --version); $(cargo --version)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((TRICKLE_CONNECTIONS + CONNECTIONS + 256)) ]; then
    ulimit -n $((TRICKLE_CONNECTIONS + CONNECTIONS + 256)) 2>/dev/null ||
        echo "warning: open-file limit $(ulimit -n) may be too low for $TRICKLE_CONNECTIONS connections"
fi

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
receiver_bin="$target_dir/release/examples/axum_receiver"
cli_bin="$target_dir/release/qstash-receiver"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    section "building release binaries (target dir: $target_dir)"
    cargo build --release -p qstash-examples --example axum_receiver
    cargo build --release -p qstash-receiver-cli
fi
[ -x "$receiver_bin" ] || die "$receiver_bin is missing"
[ -x "$cli_bin" ] || die "$cli_bin is missing"
has_body_timeout=no
grep -rqs "body_timeout" "$root/crates/qstash-receiver/src" "$root/crates/tower-qstash/src" && has_body_timeout=yes

work=$(mktemp -d "${TMPDIR:-/tmp}/qstash-load.XXXXXX")
log=""
server_pid=""

stop_receiver() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_receiver
    echo "files of this run: $work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_receiver NAME [OPEN-FILE-LIMIT]: a fresh receiver on a free port (sets port, url,
# log, server_pid); with a limit, `ulimit -n` is lowered in the subshell that starts it.
start_receiver() {
    local name=$1 nofile=${2:-}
    stop_receiver
    port=$(python3 "$here/client.py" port)
    url="http://127.0.0.1:$port/api/webhook"
    log="$work/receiver-$name.log"
    (
        if [ -n "$nofile" ]; then ulimit -n "$nofile"; fi
        PORT=$port QSTASH_CURRENT_SIGNING_KEY=$CURRENT_KEY QSTASH_NEXT_SIGNING_KEY=$NEXT_KEY \
            exec "$receiver_bin"
    ) >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
        grep -q "listening on" "$log" && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "the receiver exited at start"; }
        sleep 0.1
    done
    grep -q "listening on" "$log" || { cat "$log" >&2; die "the receiver did not print 'listening on' within 30 s"; }
    echo "$(head -n1 "$log") (pid $server_pid, open-file limit $(awk '/^Max open files/ { print $4 }' "/proc/$server_pid/limits"), log $log)"
}

# ---------------------------------------------------------------------------------------
section "starting the receiver"
start_receiver main
main_log=$log

python3 "$here/client.py" bodies "$work"

# tokens are valid for 300 s: each phase signs its own right before it starts
sign() { # KEY-OPTION URL BODY-FILE OUT
    if [ "$1" = next ]; then
        QSTASH_NEXT_SIGNING_KEY=$NEXT_KEY "$cli_bin" sign --next --url "$2" --body-file "$3" >"$4"
    elif [ "$1" = wrongkey ]; then # well-formed, for the right URL, but not a configured key
        "$cli_bin" sign --key "$WRONG_KEY" --url "$2" --body-file "$3" >"$4"
    else
        "$cli_bin" sign --key "$CURRENT_KEY" --url "$2" --body-file "$3" >"$4"
    fi
}
sign_mix() {
    sign current "$url" "$work/body_small.json" "$work/token_current"
    sign next "$url" "$work/body_small.json" "$work/token_next"
    sign current "http://127.0.0.1:$port/api/other" "$work/body_small.json" "$work/token_other_path"
    sign current "$url" "$work/body_2mib.json" "$work/token_2mib"
}

# ---------------------------------------------------------------------------------------
# memory and the summary

memory() { # prints "VmRSS_kB VmHWM_kB"
    awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$server_pid/status"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
hwm_reset=yes
reset_peak() {
    if [ "$hwm_reset" = yes ] && ! { echo 5 >"/proc/$server_pid/clear_refs"; } 2>/dev/null; then
        hwm_reset=no
        echo "note: cannot reset VmHWM (/proc/$server_pid/clear_refs): it is the peak since start"
    fi
}
alive() {
    kill -0 "$server_pid" 2>/dev/null && return 0
    echo "THE RECEIVER DIED; its log:" >&2
    cat "$log" >&2
    exit 1
}

rows=()
failed=()
rss_before=0
field() { # LINE KEY
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n1
}
cell() { # LINE KEY: the field, or - when absent
    local v
    v=$(field "$1" "$2")
    echo "${v:--}"
}
other() { # LINE: wrk's socket errors, or a client's note (underscores for spaces)
    local v
    v=$(field "$1" sockerr)
    if [ -n "$v" ]; then
        sed 's/connect:0\///; s/\/timeout:0$//; s/:/ /g; s/\//, /g' <<<"$v"
    else
        v=$(field "$1" note)
        echo "${v:--}" | tr '_' ' '
    fi
}
ms() { # a millisecond figure, shown in ms below 10 s and in s above
    awk -v v="$1" 'BEGIN { if (v == "" || v == "-") print "-"; else if (v >= 10000) printf "%.2f s", v / 1000; else if (v >= 100) printf "%.0f ms", v; else printf "%.2f ms", v }'
}
begin_phase() {
    alive
    read -r rss_before _ < <(memory)
    reset_peak
}
# end_phase NAME OUTPUT-FILE RC: reads the phase's LOAD_RESULT line and records a row
end_phase() {
    local name=$1 out=$2 rc=$3 line rss hwm check
    alive
    read -r rss hwm < <(memory)
    line=$(grep '^LOAD_RESULT ' "$out" | tail -n1 || true)
    check=$(field "$line" check)
    [ -n "$check" ] || check=FAIL
    [ "$rc" -eq 0 ] || check=FAIL
    [ "$check" = ok ] || failed+=("$name")
    rows+=("$name|$(cell "$line" requests)|$(cell "$line" rps)|$(ms "$(field "$line" p50_ms)")|$(ms "$(field "$line" p99_ms)")|$(ms "$(field "$line" max_ms)")|$(cell "$line" statuses)|$(other "$line")|$(mib "$rss")|$(mib "$hwm")|$check")
    last_rss=$rss
    last_hwm=$hwm
    echo "-- $name: check $check; receiver VmRSS $(mib "$rss"), peak in phase (VmHWM) $(mib "$hwm"), VmRSS before $(mib "$rss_before")"
}
run_logged() { # OUTPUT-FILE CMD...: runs CMD, shows and keeps its output, returns its status
    local out=$1
    shift
    local status
    "$@" 2>&1 | tee "$out"
    status=("${PIPESTATUS[@]}")
    return "${status[0]}"
}

read -r base_rss base_hwm < <(memory)
rows+=("baseline|-|-|-|-|-|-|-|$(mib "$base_rss")|$(mib "$base_hwm")|-")

# ---------------------------------------------------------------------------------------
# One wrk phase: wrk_phase TITLE ROW OUT CONNECTIONS DURATION MODE (MODE: mixed.lua's mode).
wrk_phase() {
    local title=$1 row=$2 out=$3 connections=$4 duration=$5 mode=$6 rc=0
    section "$title (wrk -t$THREADS -c$connections -d$duration --latency)"
    sign_mix
    begin_phase
    run_logged "$out" wrk -t"$THREADS" -c"$connections" -d"$duration" --latency \
        -s "$here/mixed.lua" "$url" -- "$work" "$mode" "$connections" || rc=$?
    end_phase "$row" "$out" "$rc"
}

wrk_phase "A0: exact per-class check, one connection per thread" "A0 exact mix" \
    "$work/a0.out" "$THREADS" "$EXACT_DURATION" exact

wrk_phase "A1: mixed hostile traffic" "A1 mixed+oversize" \
    "$work/a1.out" "$CONNECTIONS" "$DURATION" mixed
cat <<'EOF'
   Note: the receiver answers an oversize request 413 from its Content-Length without
   reading the body, with "Connection: close", and closes the connection. wrk then opens
   a new one; were the header missing, wrk would send its next request on the closed
   connection and lose it (A0's "lost" column), or get write errors while still writing the
   2 MiB. A2 repeats the run without oversize requests.
EOF

wrk_phase "A2: valid + invalid only" "A2 valid+invalid" \
    "$work/a2.out" "$CONNECTIONS" "$DURATION" nooversize

# ---------------------------------------------------------------------------------------
# D: before B1/B2, whose freed 1 MiB buffers the allocator would reuse and so hide growth
section "D: $JUNK_CONNECTIONS connections each declaring a $LIMIT-byte body under a token that is junk, missing or signed with another key (401 expected before any body byte is read)"
sign wrongkey "$url" "$work/body_1mib.json" "$work/token_wrongkey"
read -r d_before _ < <(memory)
d_rows=()
for d_mode in junk none wrongkey; do
    for d_write in once slow; do
        d_name="D $d_mode/$d_write"
        section "$d_name: $JUNK_CONNECTIONS x Content-Length: $LIMIT, $((LIMIT - 1)) body bytes $([ "$d_write" = once ] && echo "at once" || echo "16 KiB every 50 ms")"
        begin_phase
        rc=0
        run_logged "$work/d-$d_mode-$d_write.out" python3 "$here/client.py" junk --port "$port" \
            --mode "$d_mode" --write "$d_write" --token-file "$work/token_wrongkey" \
            -n "$JUNK_CONNECTIONS" --pid "$server_pid" --cap 30 || rc=$?
        end_phase "$d_name" "$work/d-$d_mode-$d_write.out" "$rc"
        d_rows+=("$d_name|$last_hwm")
    done
done

# ---------------------------------------------------------------------------------------
section "B1: $CONNECTIONS concurrent oversize uploads of 2 MiB, chunked (no Content-Length)"
sign current "$url" "$work/body_2mib.json" "$work/token_2mib"
begin_phase
bc_before=$rss_before
rc=0
run_logged "$work/b1.out" python3 "$here/client.py" chunked --port "$port" \
    --token-file "$work/token_2mib" -n "$CONNECTIONS" --cap 60 || rc=$?
end_phase "B1 ${CONNECTIONS}x2MiB chunked" "$work/b1.out" "$rc"
bc_peak=$last_hwm

section "B2: $CONNECTIONS concurrent valid uploads of exactly $LIMIT bytes (the limit)"
sign current "$url" "$work/body_1mib.json" "$work/token_1mib"
begin_phase
bl_before=$rss_before
rc=0
run_logged "$work/b2.out" python3 "$here/client.py" big --port "$port" \
    --token-file "$work/token_1mib" --body-file "$work/body_1mib.json" -n "$CONNECTIONS" \
    --pid "$server_pid" --cap 120 || rc=$?
end_phase "B2 ${CONNECTIONS}x1MiB" "$work/b2.out" "$rc"
bl_peak=$last_hwm
bl_after=$last_rss

# ---------------------------------------------------------------------------------------
section "C: $TRICKLE_CONNECTIONS trickling bodies (1 byte/s; 408 expected within ${TRICKLE_LIMIT_S} s for $BUDGET_BODIES of them, 503 for the rest; client cap ${TRICKLE_CAP_S} s)"
sign current "$url" "$work/body_1mib.json" "$work/token_1mib"
begin_phase
c_before=$rss_before
rc=0
run_logged "$work/c.out" python3 "$here/client.py" trickle --port "$port" \
    --token-file "$work/token_1mib" -n "$TRICKLE_CONNECTIONS" \
    --cap "$TRICKLE_CAP_S" --limit "$TRICKLE_LIMIT_S" --admit "$BUDGET_BODIES" || rc=$?
end_phase "C ${TRICKLE_CONNECTIONS} trickling" "$work/c.out" "$rc"
c_peak=$last_hwm
if [ "$rc" -ne 0 ]; then
    if [ "$has_body_timeout" = yes ]; then
        why="the source has a body_timeout, and yet not every connection got its answer in time (see the statuses and times above)"
    else
        why="the source has no body_timeout (crates/qstash-receiver/src, crates/tower-qstash/src): the limit is not in the build"
    fi
    echo "   PHASE C FAILED: not every admitted trickling connection was answered 408 Request Timeout within ${TRICKLE_LIMIT_S} s, or not every other one 503 at once"
    echo "   (statuses: $(field "$(grep '^LOAD_RESULT ' "$work/c.out" | tail -n1)" statuses); a 'no_answer' connection was still open after ${TRICKLE_CAP_S} s)."
    echo "   Expected: the layer stops reading a body that is not whole within its body timeout"
    echo "   (10 s by default) and answers 408. Here, $why."
fi

# ---------------------------------------------------------------------------------------
# E on a fresh receiver: after B2, freed buffers would hide its peak
section "E: $BUDGET_DELIVERIES valid $LIMIT-byte deliveries in flight at once, for a buffer budget of $BUDGET_BODIES bodies (fresh receiver)"
start_receiver budget
sign current "$url" "$work/body_1mib.json" "$work/token_1mib"
read -r e_base _ < <(memory)
rows+=("E: fresh receiver|-|-|-|-|-|-|-|$(mib "$e_base")|-|-")
begin_phase
e_before=$rss_before
rc=0
run_logged "$work/e.out" python3 "$here/client.py" budget --port "$port" \
    --token-file "$work/token_1mib" --body-file "$work/body_1mib.json" -n "$BUDGET_DELIVERIES" \
    --admit "$BUDGET_BODIES" --pid "$server_pid" --cap 60 || rc=$?
end_phase "E ${BUDGET_DELIVERIES}x1MiB, budget ${BUDGET_BODIES}" "$work/e.out" "$rc"
e_peak=$last_hwm

# ---------------------------------------------------------------------------------------
# F1-F3 on a fresh receiver with few file descriptors
section "F: slow and idle connections, $SLOW_CONNECTIONS at a time, against a receiver under ulimit -n $SLOW_NOFILE, while a valid delivery comes every ${SLOW_EVERY} s for ${SLOW_DURATION} s"
start_receiver slow "$SLOW_NOFILE"
read -r f_base _ < <(memory)
rows+=("F: fresh receiver, ulimit -n $SLOW_NOFILE|-|-|-|-|-|-|-|$(mib "$f_base")|-|-")
for f in "F1 drip" "F2 partial" "F3 idle"; do
    f_name=${f% *}
    f_kind=${f#* }
    case $f_kind in
        drip) f_what="dripped headers (a header byte a second)" ;;
        partial) f_what="partial headers (a head without its final CRLF, then silence)" ;;
        idle) f_what="idle keep-alive connections (one valid delivery, then nothing)" ;;
    esac
    section "$f_name: $SLOW_CONNECTIONS $f_what; valid deliveries meanwhile"
    sign current "$url" "$work/body_small.json" "$work/token_current"
    begin_phase
    rc=0
    run_logged "$work/f-$f_kind.out" python3 "$here/client.py" slow --port "$port" \
        --kind "$f_kind" --token-file "$work/token_current" --body-file "$work/body_small.json" \
        -n "$SLOW_CONNECTIONS" --every "$SLOW_EVERY" --duration "$SLOW_DURATION" \
        --valid-cap 20 --close-limit "$SLOW_CLOSE_LIMIT" --cap 30 || rc=$?
    end_phase "$f_name $SLOW_CONNECTIONS $f_kind" "$work/f-$f_kind.out" "$rc"
    # let the next kind start from a receiver with free descriptors
    sleep 1
done

# ---------------------------------------------------------------------------------------
section "memory"
mem_fail=0
mem_verdict() { # NAME GROWTH_KB BOUND_KB WHAT
    local verdict=ok
    [ "$2" -le "$3" ] || { verdict=OVER; mem_fail=1; }
    printf '  %-28s peak %s over the RSS before the phase; bound %s (%s): %s\n' \
        "$1" "$(mib "$2")" "$(mib "$3")" "$4" "$verdict"
}
mem_verdict "B1 ${CONNECTIONS} x 2 MiB chunked" $((bc_peak - bc_before)) $((CONNECTIONS * LIMIT * 2 / 1024 + 32768)) \
    "2 x ${CONNECTIONS} x limit + 32 MiB"
mem_verdict "B2 ${CONNECTIONS} x 1 MiB held" $((bl_peak - bl_before)) $((CONNECTIONS * LIMIT * 2 / 1024 + 32768)) \
    "2 x ${CONNECTIONS} x limit + 32 MiB"
mem_verdict "C ${TRICKLE_CONNECTIONS} trickling" $((c_peak - c_before)) 16384 \
    "16 MiB, whatever the number of connections"
if [ $((bl_after - bl_before)) -gt $((CONNECTIONS * LIMIT / 2048)) ]; then
    echo "  VmRSS stays $(mib $((bl_after - bl_before))) higher after B2. The example's Inbox keeps at most 4 MiB of"
    echo "  payloads (Inbox::KEEP_BYTES); the rest is freed memory the allocator keeps for reuse (a"
    echo "  later phase's peak does not grow over it)."
fi
for d_row in "${d_rows[@]}"; do
    mem_verdict "${d_row%|*}" $((${d_row##*|} - d_before)) $((JUNK_GROWTH_MIB * 1024)) \
        "$JUNK_GROWTH_MIB MiB over the RSS before D"
done
mem_verdict "E ${BUDGET_DELIVERIES} x 1 MiB, budget ${BUDGET_BODIES}" $((e_peak - e_before)) \
    $((BUDGET_BODIES * LIMIT * 2 / 1024 + 16384)) "2 x ${BUDGET_BODIES} x limit + 16 MiB, not ${BUDGET_DELIVERIES}"
[ "$mem_fail" -eq 0 ] || failed+=("memory bound")

# ---------------------------------------------------------------------------------------
section "summary (receiver: $(head -n1 "$main_log" | sed 's/^listening on //'); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg))"
{
    echo "phase|requests|rps|p50|p99|max|statuses|wrk socket errors / notes|VmRSS after|VmHWM (phase peak)|check"
    printf '%s\n' "${rows[@]}"
} | awk -F'|' '{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
    END { for (r = 1; r <= n; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf("%-" w[i] "s  ", cell[r, i]); sub(/ +$/, "", line); print line } }'
echo "A*: wrk's figures (latency of the answered requests; a request lost with its connection"
echo "has none). B1: time from the start of all uploads to the 413. B2: time from the last body"
echo "byte to the whole answer; rps without the 1 s hold with all bodies in flight. C: time from"
echo "the headers to the answer. D: time from the start of writing to the 401. E: 503s from the"
echo "head, 200s from the rest of the body, to the answer. F: the valid deliveries' statuses and"
echo "latency (connect to whole answer); the notes say how long the slow connections stayed open."

if [ "${#failed[@]}" -gt 0 ]; then
    printf '\nFAILED: %s\n' "$(printf '%s; ' "${failed[@]}" | sed 's/; $//')"
    exit 1
fi
printf '\nall checks passed\n'
