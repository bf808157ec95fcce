#!/bin/sh
# Runs a throwaway PostgreSQL cluster for `cargo perfgate`: `postgres.sh DIR PORT`.
#
# initdb into DIR/data, then exec postgres on 127.0.0.1:PORT (TCP only, no Unix socket, so it shares
# nothing with a system cluster). PostgreSQL refuses to run as root: as root, both run as the
# `postgres` user through setpriv, which execs (no fork, no new session), so the server stays the
# process perfgate started, in its process group; --pdeathsig keep restores the parent-death signal
# that the change of user clears. The server's own children are reaped by it when perfgate stops it.
#
# Durability is off (fsync, full_page_writes, synchronous_commit): the gate measures the service's
# queries, not the runner's disk. The binaries: $PG_BINDIR, else initdb on PATH, else the newest
# /usr/lib/postgresql/*/bin (Debian and Ubuntu keep them off PATH).
set -eu

dir=${1:?usage: postgres.sh DIR PORT}
port=${2:?usage: postgres.sh DIR PORT}

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
    if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
        bindir=$(dirname "$(command -v postgres)")
    else
        bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n 1)
    fi
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/postgres" ] || [ ! -x "$bindir/initdb" ]; then
    echo "postgres.sh: PostgreSQL's server binaries were not found (initdb, postgres): install PostgreSQL" >&2
    echo "  (Debian/Ubuntu: apt-get install postgresql) or set PG_BINDIR to the directory that holds them" >&2
    exit 127
fi

as_owner=""
if [ "$(id -u)" = 0 ]; then
    # The data directory must belong to the user the server runs as.
    chown postgres:postgres "$dir"
    as_owner="setpriv --reuid=postgres --regid=postgres --init-groups --pdeathsig keep --"
    if ! $as_owner test -w "$dir"; then
        echo "postgres.sh: the postgres user cannot write $dir: a directory on its way is closed to other users;" >&2
        echo "  set TMPDIR to a directory that every user can traverse (e.g. /tmp)" >&2
        exit 1
    fi
fi

echo "postgres.sh: initdb into $dir/data ($("$bindir/postgres" --version))"
$as_owner "$bindir/initdb" --pgdata="$dir/data" --username=postgres --auth=trust --encoding=UTF8 \
    --locale=C --no-sync --no-instructions >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}
exec $as_owner "$bindir/postgres" -D "$dir/data" -p "$port" -k "" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off \
    -c max_connections=50 -c shared_buffers=64MB -c log_min_messages=warning
