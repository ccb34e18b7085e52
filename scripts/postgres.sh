#!/usr/bin/env bash
# PostgreSQL for the transactional inbox (qstash-dedupe feature `postgres`): installs Debian's
# `postgresql` (15 on Debian 12) when initdb is missing, idempotent; and starts or stops a
# throwaway cluster on a loopback port, for scripts (the tests start their own).
#
#   scripts/postgres.sh                   # install when missing
#   scripts/postgres.sh start DIR PORT    # initdb + start; prints the URL
#   scripts/postgres.sh stop DIR          # stop (immediate) and remove DIR
#
# initdb refuses to run as root: as root, the cluster runs as the `postgres` user.
set -euo pipefail

bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

install() {
    if bindir >/dev/null; then
        echo "postgresql: $("$(bindir)/postgres" --version)"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "postgresql is not installed; run as root: apt-get install -y postgresql" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    # The Debian package starts a system cluster on 5432; the tests and scripts use their own.
    echo "postgresql: $("$(bindir)/postgres" --version)"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

start() { # DIR PORT
    local dir="$1" port="$2" bin
    bin="$(bindir)"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_owner "'$bin/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1"
    as_owner "'$bin/pg_ctl' -D '$dir/data' -l '$dir/data/log' -w -t 60 \
        -o '-p $port -k $dir/data -c listen_addresses=127.0.0.1 -c max_connections=200' start" >/dev/null
    echo "postgres://postgres@127.0.0.1:$port/postgres"
}

stop() { # DIR
    local dir="$1" bin
    bin="$(bindir)"
    as_owner "'$bin/pg_ctl' -D '$dir/data' -m immediate stop" >/dev/null 2>&1 || true
    rm -rf "$dir"
}

case "${1:-install}" in
    install) install ;;
    start) start "$2" "$3" ;;
    stop) stop "$2" ;;
    *) echo "usage: $0 [install | start DIR PORT | stop DIR]" >&2; exit 2 ;;
esac
