#!/usr/bin/env bash
# The local QStash's web console end to end in headless Chromium: `qstash-receiver dev`
# serves it, scripts/console/console.test.mjs drives it with npm `playwright-core` (from
# scripts/console/package-lock.json) and Debian's `chromium`.
#
#   scripts/console.sh                  # the flow; installs chromium, node and npm when missing
#   SCREENSHOTS=docs scripts/console.sh # also writes docs/console-*.png
#
# Installs what is missing (as root, from Debian's archive and npm only); never downloads a
# browser of Playwright's own.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
phase_start=$SECONDS
took() { echo "   ($1: $((SECONDS - phase_start)) s)"; phase_start=$SECONDS; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== console: apt-get install ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "console: install ${missing[*]} (apt-get install ${missing[*]}), or run as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    took "install"
fi

echo "== console: build"
cargo build -q -j 2 -p qstash-receiver-cli --bin qstash-receiver
took "build"

echo "== console: npm ci"
(cd scripts/console && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
took "npm ci"

echo "== console: headless Chromium ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
if [ -n "${SCREENSHOTS:-}" ]; then
    mkdir -p "$SCREENSHOTS"
    SCREENSHOTS="$(cd "$SCREENSHOTS" && pwd)"
    export SCREENSHOTS
fi
QSTASH_BIN="$(cd "$target" && pwd)/debug/qstash-receiver" \
CHROMIUM=/usr/bin/chromium \
    node scripts/console/console.test.mjs
