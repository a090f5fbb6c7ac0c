#!/usr/bin/env bash
# Manage a private PostgreSQL cluster: scripts/pg.sh start|stop|restart|status DIR PORT [fast]
# As root, the server runs as the `postgres` user (initdb and postgres refuse root).
# `fast` trades durability for speed (fsync off) — for throwaway test clusters only.
# PG_OPTIONS adds server options at start, e.g. "-c track_commit_timestamp=on".
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|restart|status DIR PORT [fast]}
dir=${2:?data directory}
port=${3:-54329}
mode=${4:-durable}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    if [ ! -s "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
      as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
      {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "max_connections = 400"
        echo "shared_buffers = 256MB"
        echo "log_min_messages = warning"
        echo "logging_collector = off"
        if [ "$mode" = fast ]; then
          echo "fsync = off"; echo "synchronous_commit = off"; echo "full_page_writes = off"
        fi
      } | as_pg tee -a "$dir/postgresql.conf" >/dev/null
    fi
    if as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      echo "PostgreSQL already running in $dir"
    else
      as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o "-p $port ${PG_OPTIONS:-}" start >/dev/null
    fi
    for db in vacancy; do
      as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
        as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    done
    echo "postgres://postgres@127.0.0.1:$port/vacancy"
    ;;
  stop)
    if [ -s "$dir/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    fi
    ;;
  restart)
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -m fast -w -o "-p $port" restart >/dev/null
    ;;
  status)
    as_pg "$bin/pg_ctl" -D "$dir" status
    ;;
  *)
    echo "unknown command $cmd" >&2; exit 2 ;;
esac
