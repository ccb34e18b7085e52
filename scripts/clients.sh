#!/usr/bin/env bash
# The official clients against `qstash-receiver dev`: the TypeScript `@upstash/qstash` (npm,
# from scripts/clients/package-lock.json) and the Python `qstash` (PyPI, in a virtual
# environment) publish; the deliveries reach this workspace's axum and actix example
# receivers, which verify them; the TypeScript `Receiver` verifies the tokens; and the
# quickstart (QSTASH_DEV=true, nothing else) reaches a receiver.
#
# Needs node + npm and python3 with venv. The dev server listens on 8080 (the port
# QSTASH_DEV=true looks at), or on $QSTASH_DEV_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

dev_port="${QSTASH_DEV_PORT:-8080}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # name port
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$1 never listened on port $2" >&2
    cat "$work"/*.log >&2 || true
    exit 1
}

echo "== clients: build"
cargo build -q -p qstash-receiver-cli --bin qstash-receiver
cargo build -q -p qstash-examples --example axum_receiver --example actix_receiver

echo "== clients: install"
(cd scripts/clients && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "qstash==3.4.0"

echo "== clients: start qstash-receiver dev and the example receivers"
axum_port="$(free_port)"
actix_port="$(free_port)"
"$target"/debug/qstash-receiver dev --port "$dev_port" --quiet >"$work/dev.log" 2>&1 &
pids+=($!)
QSTASH_DEV=1 PORT="$axum_port" "$target"/debug/examples/axum_receiver >"$work/axum.log" 2>&1 &
pids+=($!)
QSTASH_DEV=1 PORT="$actix_port" "$target"/debug/examples/actix_receiver >"$work/actix.log" 2>&1 &
pids+=($!)
wait_port "qstash-receiver dev" "$dev_port"
wait_port "axum_receiver" "$axum_port"
wait_port "actix_receiver" "$actix_port"

export QSTASH_URL="http://127.0.0.1:$dev_port"
export QSTASH_TOKEN="eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
export AXUM_URL="http://127.0.0.1:$axum_port"
export ACTIX_URL="http://127.0.0.1:$actix_port"

status=0
echo "== clients: TypeScript (@upstash/qstash)"
(cd scripts/clients && node ts_client.mjs) || status=1
echo "== clients: Python (qstash)"
"$work/venv/bin/python" scripts/clients/py_client.py || status=1
echo "== clients: quickstart, QSTASH_DEV=true and nothing else"
quickstart_env=(PATH="$PATH" HOME="${HOME:-/root}" QSTASH_DEV=true RECEIVER_URL="$AXUM_URL")
if [ "$dev_port" != 8080 ]; then quickstart_env+=(QSTASH_DEV_PORT="$dev_port"); fi
(cd scripts/clients && env -i "${quickstart_env[@]}" node quickstart.mjs) || status=1

if [ "$status" != 0 ]; then
    echo "== clients: logs" >&2
    tail -n 50 "$work"/*.log >&2 || true
fi
exit "$status"
