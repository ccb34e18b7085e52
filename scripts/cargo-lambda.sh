#!/usr/bin/env bash
# The Lambda example under cargo-lambda's own emulator (`cargo lambda watch`), as its users test
# it: cargo-lambda from PyPI (a wheel with the prebuilt binary) in a virtualenv that is reused
# across runs, then `cargo test -p qstash-examples --test lambda_cargo_lambda`.
#
#   scripts/cargo-lambda.sh           install when missing, run the test
#   scripts/cargo-lambda.sh install   install when missing, print the binary's path
#
# A cargo-lambda already on PATH at the pinned version is used as it is. Needs python3 with
# venv (Debian: python3-venv, installed when missing) and the PyPI registry. Idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${QSTASH_CARGO_LAMBDA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/qstash-cargo-lambda}
VERSION=1.9.2

install() {
  local found
  found=$(command -v cargo-lambda || true)
  if [ -n "$found" ] && "$found" lambda --version 2>/dev/null | grep -qF "cargo-lambda $VERSION"; then
    echo "$found"
    return
  fi
  if ! "$STATE/venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "cargo-lambda $VERSION"; then
    echo "cargo-lambda.sh: pip install cargo-lambda==$VERSION (once)" >&2
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
      apt-get install -y -qq python3-venv >&2 || { apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2; }
    fi
    rm -rf "$STATE/venv"
    python3 -m venv "$STATE/venv" >&2
    "$STATE/venv/bin/pip" install -q --disable-pip-version-check "cargo-lambda==$VERSION" >&2
  fi
  echo "$STATE/venv/bin/cargo-lambda"
}

case "${1:-test}" in
  install) install ;;
  test)
    tool=$(install)
    cd "$ROOT"
    PATH="$(dirname "$tool"):$PATH" cargo test -p qstash-examples --test lambda_cargo_lambda
    ;;
  *)
    echo "usage: scripts/cargo-lambda.sh [test|install]" >&2
    exit 2
    ;;
esac
