#!/usr/bin/env bash
# The Cloudflare Worker example (examples/workers), built for wasm32-unknown-unknown and served
# locally under workerd.
#
#   scripts/workers.sh          prepare the wasm32 toolchain and tools, build the Worker
#   scripts/workers.sh serve    serve it under workerd on 127.0.0.1:$PORT (default 8787), with
#                               QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY (and, when
#                               set, QSTASH_DEV, QSTASH_REGION and the regional key variables)
#                               from the environment as the Worker's bindings; builds first if
#                               needed
#   scripts/workers.sh test     build, then run the conformance table's HTTP cases against the
#                               served Worker (cargo test -p qstash-examples --test workers)
#   scripts/workers.sh ready    exit 0 when the Worker is built and workerd installed (tests ask)
#   scripts/workers.sh check    rustfmt and clippy (-D warnings, wasm32) of the Worker crate
#   scripts/workers.sh env      print the environment (PATH, RUSTC, tool paths) to `eval`
#
# The wasm32 target without `rustup target add` (which cannot download here): when the host
# rustc has no wasm32-unknown-unknown std, Debian's `rust-src` for the exact host rustc version
# (trixie-backports, fetched through a private apt config: the host's apt sources stay as they
# are) gives the std sources; the rustup toolchain is copied with hard links, std is built once
# for wasm32 with -Zbuild-std (RUSTC_BOOTSTRAP=1 for that step only) and installed as the
# copy's wasm32 sysroot. From then on it is a plain `cargo build --target wasm32-unknown-unknown`.
# wasm-bindgen-cli and worker-build come from crates.io (`cargo install`), at the versions the
# Worker's Cargo.lock names; workerd, esbuild and binaryen (wasm-opt) from npm. Everything goes
# to $QSTASH_WORKERS_HOME (default ~/.cache/qstash-workers) and is reused on the next run; a
# host that already has the wasm32 std, or the tools on PATH at the right versions, uses those.
#
# Needs: Debian 12 (or later) with rustup's stable Rust, curl-free network to deb.debian.org,
# crates.io and the npm registry, npm (Node >= 18). Idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKER_DIR="$ROOT/examples/workers"
STATE=${QSTASH_WORKERS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/qstash-workers}
PORT=${PORT:-8787}
WORKERD_VERSION=1.20261123.1
ESBUILD_VERSION=0.28.2    # the version worker-build 0.8.7 expects
BINARYEN_VERSION=132.0.0  # wasm-opt 132, the version worker-build 0.8.7 expects
COMPAT_DATE=2026-11-01

RUST_VER=$(rustc -V | awk '{print $2}')
TC="$STATE/toolchain-$RUST_VER"
TOOLS="$STATE/tools"
NODE_DIR="$STATE/node"
# The Worker's own target directory: its dependencies (worker, wasm-bindgen) are none of the
# workspace's, and a wasm32 build shares nothing with a host one.
WORKER_TARGET_DIR=${WORKER_TARGET_DIR:-$STATE/target}

say() { echo "workers.sh: $*" >&2; }

lock_version() { # the version of crate $1 in the Worker's Cargo.lock
  awk -v n="$1" '$0 == "name = \"" n "\"" {getline; gsub(/version = |"/, ""); print; exit}' \
    "$WORKER_DIR/Cargo.lock"
}

has_wasm_std() { # $1: a rustc
  local libdir
  libdir=$("$1" --print target-libdir --target wasm32-unknown-unknown 2>/dev/null) || return 1
  compgen -G "$libdir/libstd-*.rlib" >/dev/null
}

# ------------------------------------------------------------------ the wasm32 toolchain
wasm_rustc() { # prints the rustc to use, preparing the toolchain copy when needed
  if has_wasm_std "$(command -v rustc)"; then
    command -v rustc
    return
  fi
  if [ -x "$TC/bin/rustc" ] && has_wasm_std "$TC/bin/rustc"; then
    echo "$TC/bin/rustc"
    return
  fi
  say "building the wasm32-unknown-unknown std for rustc $RUST_VER (once)"
  local aptd="$STATE/apt" src sb libdir deb_ver
  mkdir -p "$aptd"/{lists/partial,cache/archives/partial,sources.d,prefs.d}
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main" \
    >"$aptd/sources.list"
  cat >"$aptd/apt.conf" <<EOF
Dir::Etc::SourceList "$aptd/sources.list";
Dir::Etc::SourceParts "$aptd/sources.d";
Dir::Etc::Preferences "$aptd/prefs";
Dir::Etc::PreferencesParts "$aptd/prefs.d";
Dir::State::Lists "$aptd/lists";
Dir::Cache "$aptd/cache";
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
  APT_CONFIG="$aptd/apt.conf" apt-get update -qq >&2
  deb_ver=$(APT_CONFIG="$aptd/apt.conf" apt-cache madison rust-src | awk '{print $3}' |
    grep -m1 "^${RUST_VER}+dfsg" || true)
  if [ -z "$deb_ver" ]; then
    say "Debian has no rust-src for rustc $RUST_VER; install the target with \`rustup target add wasm32-unknown-unknown\` where rustup can download"
    exit 1
  fi
  rm -f "$aptd"/rust-src_*.deb
  (cd "$aptd" && APT_CONFIG="$aptd/apt.conf" apt-get download -qq "rust-src=$deb_ver" >&2)
  rm -rf "$STATE/rust-src" "$TC.partial"
  mkdir -p "$STATE/rust-src"
  dpkg-deb -x "$aptd"/rust-src_*.deb "$STATE/rust-src"
  src="$STATE/rust-src/usr/src/rustc-$RUST_VER"
  test -f "$src/library/Cargo.lock"
  # A copy of the host toolchain (hard links: no extra disk), with the std sources.
  cp -al "$(rustc --print sysroot)" "$TC.partial" 2>/dev/null || cp -a "$(rustc --print sysroot)" "$TC.partial"
  mkdir -p "$TC.partial/lib/rustlib/src/rust"
  cp -a "$src/library" "$src/Cargo.lock" "$TC.partial/lib/rustlib/src/rust/"
  sb="$STATE/sysroot-build"
  rm -rf "$sb" && mkdir -p "$sb/src"
  printf '[package]\nname = "sysroot"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[profile.release]\nopt-level = 3\ndebug = 0\n' \
    >"$sb/Cargo.toml"
  echo '#![no_std]' >"$sb/src/lib.rs"
  (cd "$sb" && PATH="$TC.partial/bin:$PATH" RUSTC="$TC.partial/bin/rustc" RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="-Zforce-unstable-if-unmarked -Cembed-bitcode=yes" CARGO_TARGET_DIR="$sb/target" \
    cargo build -q --release --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort >&2)
  libdir="$TC.partial/lib/rustlib/wasm32-unknown-unknown/lib"
  mkdir -p "$libdir"
  find "$sb/target/wasm32-unknown-unknown/release/deps" -name '*.rlib' ! -name 'libsysroot-*' \
    -exec cp {} "$libdir/" \;
  rm -rf "$sb" "$STATE/rust-src" "$TC"
  mv "$TC.partial" "$TC"
  echo "$TC/bin/rustc"
}

# ------------------------------------------------------------------ tools
cargo_tool() { # $1 crate, $2 binary, $3 version: prints the binary's path
  # (`wasm-bindgen --version` says `wasm-bindgen 0.2.130`, `worker-build --version` `0.8.7`)
  local crate=$1 bin=$2 version=$3 found
  found=$(command -v "$bin" || true)
  if [ -n "$found" ] && "$found" --version 2>/dev/null | grep -qE "(^| )$version\$"; then
    echo "$found"
    return
  fi
  if ! { [ -x "$TOOLS/bin/$bin" ] && "$TOOLS/bin/$bin" --version 2>/dev/null | grep -qE "(^| )$version\$"; }; then
    say "cargo install $crate $version (once)"
    # No --locked: wasm-bindgen-cli's lockfile pins a webpki-roots the registry does not serve.
    CARGO_TARGET_DIR="$STATE/install-target" cargo install -q --root "$TOOLS" "$crate" --version "$version" >&2
    rm -rf "$STATE/install-target"
  fi
  echo "$TOOLS/bin/$bin"
}

npm_tools() {
  local want="workerd@$WORKERD_VERSION esbuild@$ESBUILD_VERSION binaryen@$BINARYEN_VERSION"
  if [ "$(cat "$NODE_DIR/.installed" 2>/dev/null)" != "$want" ]; then
    say "npm install $want (once)"
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && { [ -f package.json ] || echo '{"private":true}' >package.json; } &&
      # shellcheck disable=SC2086
      npm install --silent --no-audit --no-fund --no-save $want >&2)
    echo "$want" >"$NODE_DIR/.installed"
  fi
}

prepare() {
  local rustc bindgen worker_build
  rustc=$(wasm_rustc)
  bindgen=$(cargo_tool wasm-bindgen-cli wasm-bindgen "$(lock_version wasm-bindgen)")
  worker_build=$(cargo_tool worker-build worker-build "$(lock_version worker)")
  npm_tools
  export PATH="$(dirname "$rustc"):$(dirname "$bindgen"):$(dirname "$worker_build"):$NODE_DIR/node_modules/.bin:$PATH"
  export RUSTC="$rustc"
  export WASM_BINDGEN_BIN="$bindgen"
  export ESBUILD_BIN="$NODE_DIR/node_modules/@esbuild/linux-x64/bin/esbuild"
  export WASM_OPT_BIN="$NODE_DIR/node_modules/.bin/wasm-opt"
  export WORKER_BUILD="$worker_build"
}

build() {
  prepare
  say "worker-build --release in examples/workers"
  (cd "$WORKER_DIR" && CARGO_TARGET_DIR="$WORKER_TARGET_DIR" "$WORKER_BUILD" --release >&2)
  ls -l "$WORKER_DIR/build/index.js" "$WORKER_DIR/build/index_bg.wasm" >&2
}

built() { [ -f "$WORKER_DIR/build/index.js" ] && [ -f "$WORKER_DIR/build/index_bg.wasm" ]; }

serve() {
  built || build
  npm_tools
  # The keys are read by workerd from its own environment (`fromEnvironment`): they are never
  # written to a file. Only variables that are set become bindings: workerd binds an unset one
  # as `null`, which is not a string binding.
  local bindings="" name
  for name in QSTASH_CURRENT_SIGNING_KEY QSTASH_NEXT_SIGNING_KEY QSTASH_DEV QSTASH_REGION \
    EU_CENTRAL_1_QSTASH_CURRENT_SIGNING_KEY EU_CENTRAL_1_QSTASH_NEXT_SIGNING_KEY \
    US_EAST_1_QSTASH_CURRENT_SIGNING_KEY US_EAST_1_QSTASH_NEXT_SIGNING_KEY; do
    if [ -n "${!name+set}" ]; then
      bindings="$bindings    (name = \"$name\", fromEnvironment = \"$name\"),
"
    fi
  done
  cat >"$WORKER_DIR/build/workerd.capnp" <<EOF
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:$PORT", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "$COMPAT_DATE",
  bindings = [
$bindings  ],
);
EOF
  say "serving examples/workers under workerd on http://127.0.0.1:$PORT"
  cd "$WORKER_DIR/build"
  exec "$NODE_DIR/node_modules/.bin/workerd" serve workerd.capnp
}

case "${1:-build}" in
  build) build ;;
  serve) serve ;;
  ready) built && [ -x "$NODE_DIR/node_modules/.bin/workerd" ] ;;
  check)
    # The Worker crate is outside the workspace: its formatting and lints, for wasm32.
    prepare
    cd "$WORKER_DIR"
    cargo fmt --check
    CARGO_TARGET_DIR="$WORKER_TARGET_DIR" cargo clippy --target wasm32-unknown-unknown -- -D warnings
    ;;
  test)
    build
    cd "$ROOT"
    cargo test -p qstash-examples --test workers
    ;;
  env)
    prepare
    printf 'export PATH=%q RUSTC=%q WASM_BINDGEN_BIN=%q ESBUILD_BIN=%q WASM_OPT_BIN=%q\n' \
      "$PATH" "$RUSTC" "$WASM_BINDGEN_BIN" "$ESBUILD_BIN" "$WASM_OPT_BIN"
    ;;
  *)
    echo "usage: scripts/workers.sh [build|serve|test|ready|check|env]" >&2
    exit 2
    ;;
esac
