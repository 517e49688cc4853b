#!/usr/bin/env bash
# A local PostgreSQL for `lockdesk-cli bench gateway --store ...`, with the durability settings a
# brand's DBA would use (fsync=on, synchronous_commit=on, full_page_writes=on: a 2xx means the
# event is on disk). Never benchmark with fsync off: the figures would promise what a crash breaks.
#
#   scripts/bench-pg.sh start DIR   # initdb (if DIR/data is missing) and start; prints the URL
#   scripts/bench-pg.sh stop DIR    # stop (fast shutdown) and leave DIR for the next start
#
# Uses Debian's postgresql-15 binaries (/usr/lib/postgresql/*/bin), the same approach as
# crates/lockdesk-testkit/src/pg.rs: PostgreSQL refuses to run as root, so when run as root DIR
# is handed to nobody (uid/gid 65534) and every server command runs through setpriv. DIR must be
# on a real disk (not tmpfs: fsync there proves nothing). The password of role `lockdesk` is
# generated into DIR/password (mode 600); give it to the bench as LOCKDESK_PG_PASSWORD:
#
#   LOCKDESK_PG_PASSWORD=$(cat DIR/password) lockdesk-cli bench gateway \
#       --store "$(scripts/bench-pg.sh url DIR)" --instances 1,2
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop|url DIR" >&2
    exit 2
fi
port=${LOCKDESK_BENCH_PG_PORT:-55432}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [[ -z $bindir || ! -x $bindir/initdb ]]; then
    echo "PostgreSQL's server binaries were not found: apt-get install postgresql-15" >&2
    exit 1
fi

as_server() {
    if [[ $(id -u) == 0 ]]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH=/usr/bin:/bin LC_ALL=C \
            HOME="$dir" "$@"
    else
        env -i PATH=/usr/bin:/bin LC_ALL=C HOME="$dir" "$@"
    fi
}

case $cmd in
url)
    echo "postgres://lockdesk@127.0.0.1:$port/lockdesk"
    ;;
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(stat -f -c %T "$dir") == tmpfs ]]; then
        echo "$dir is on tmpfs: put the bench database on a real disk" >&2
        exit 1
    fi
    if [[ ! -d $dir/data ]]; then
        umask 077
        mkdir -p "$dir/sock"
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/password"
        if [[ $(id -u) == 0 ]]; then chown -R 65534:65534 "$dir"; fi
        as_server "$bindir/initdb" -D "$dir/data" -U lockdesk --pwfile="$dir/password" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-instructions \
            >"$dir/initdb.log"
        # Durable, and sized like a small dedicated server; everything else is PostgreSQL's
        # default (wal_sync_method=fdatasync on Linux, commit_delay=0).
        cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 100
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_size = 2GB
log_min_messages = warning
EOF
        as_server "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" >/dev/null
        as_server "$bindir/psql" -X -q -h "$dir/sock" -p "$port" -U lockdesk -d postgres \
            -c "CREATE DATABASE lockdesk" >/dev/null
    else
        as_server "$bindir/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" >/dev/null
    fi
    as_server "$bindir/psql" -X -q -A -t -h "$dir/sock" -p "$port" -U lockdesk -d lockdesk \
        -c "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' || current_setting('synchronous_commit')" >&2
    echo "postgres://lockdesk@127.0.0.1:$port/lockdesk"
    ;;
stop)
    dir=$(cd "$dir" && pwd)
    as_server "$bindir/pg_ctl" stop -m fast -D "$dir/data" >/dev/null
    ;;
*)
    echo "usage: $0 start|stop|url DIR" >&2
    exit 2
    ;;
esac
