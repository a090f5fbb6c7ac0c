#!/usr/bin/env bash
# Manage a private PostgreSQL cluster: scripts/pg.sh start|stop|restart|status|destroy DIR PORT [fast]
# As root, the server runs as the `postgres` user (initdb and postgres refuse root). When
# that user cannot reach DIR (a checkout below a folder only root may enter, such as
# /root), the cluster lives in /var/lib/postgresql/vacancy/<hash of DIR> and DIR is a
# symbolic link to it, so every command still takes DIR.
# `fast` trades durability for speed (fsync off) — for throwaway test clusters only.
# PG_OPTIONS adds server options at start, e.g. "-c track_commit_timestamp=on".
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|restart|status|destroy DIR PORT [fast]}
dir=${2:?data directory}
port=${3:-54329}
mode=${4:-durable}
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
mkdir -p "$(dirname "$dir")"
link=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
dir=$link

# As root: the postgres user, from / (it may not be able to enter the working directory).
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The directory the server really uses: DIR itself, or where its link points, or (as root,
# when the postgres user cannot enter DIR's parent) a new directory that user can reach.
if [ -L "$link" ]; then
  dir=$(readlink "$link")
elif [ "$(id -u)" = 0 ] && [ "$cmd" = start ] && [ ! -e "$link" ] &&
  ! as_pg test -x "$(dirname "$link")"; then
  dir=/var/lib/postgresql/vacancy/$(printf '%s' "$link" | sha256sum | cut -c1-16)
  mkdir -p "$dir"
  chown postgres:postgres /var/lib/postgresql/vacancy "$dir"
  ln -s "$dir" "$link"
  echo "note: the postgres user cannot enter $(dirname "$link"), so the cluster lives in $dir ($link links to it)" >&2
fi

running() { [ -s "$dir/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; }

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
    if running; then
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
    # Another stop (make run's own, on its way out) may win the race: then it is stopped all the same.
    if running; then
      as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || ! running ||
        { echo "PostgreSQL in $dir did not stop; see $dir/server.log" >&2; exit 1; }
    fi
    ;;
  restart)
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -m fast -w -o "-p $port" restart >/dev/null
    ;;
  status)
    as_pg "$bin/pg_ctl" -D "$dir" status
    ;;
  destroy)
    # Stops the cluster and removes its data (and the link to it, if DIR is one).
    if running; then as_pg "$bin/pg_ctl" -D "$dir" -m immediate -w stop >/dev/null; fi
    rm -rf "$dir"
    [ -L "$link" ] && rm -f "$link"
    ;;
  *)
    echo "unknown command $cmd" >&2; exit 2 ;;
esac
