#!/usr/bin/env bash
# Manage a private PostgreSQL cluster: scripts/pg.sh start|stop|restart|status|destroy DIR PORT [fast]
#   scripts/pg.sh standby DIR PORT PRIMARY_PORT [sync]   a streaming standby of the cluster on
#       PRIMARY_PORT (pg_basebackup), started; with `sync` the primary waits for it at every commit
#   scripts/pg.sh promote DIR PORT                       makes a standby the primary
#   scripts/pg.sh kill DIR PORT                          kill -9 of the server (crash, no shutdown)
#   scripts/pg.sh walsender-stop DIR PORT                stops replication from this primary (SIGSTOP)
# As root, the server runs as the `postgres` user (initdb and postgres refuse root). When
# that user cannot reach DIR (a checkout below a folder only root may enter, such as
# /root), the cluster lives in /var/lib/postgresql/vacancy/<hash of DIR> and DIR is a
# symbolic link to it, so every command still takes DIR.
# `fast` trades durability for speed (fsync off) — for throwaway test clusters only.
# PG_OPTIONS adds server options at start, e.g. "-c track_commit_timestamp=on".
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop|restart|status|destroy|standby|promote|kill DIR PORT [fast|PRIMARY_PORT [sync]]}
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
elif [ "$(id -u)" = 0 ] && { [ "$cmd" = start ] || [ "$cmd" = standby ]; } && [ ! -e "$link" ] &&
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
      as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o "-p $port ${PG_OPTIONS:-}" start >/dev/null ||
        { echo "PostgreSQL on port $port did not start; its log ends:" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
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
  standby)
    primary=${4:?the port of the primary}
    sync=${5:-async}
    name=standby_$port
    if [ ! -s "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
      # A few tries: a primary that has just started may still refuse a replication connection.
      for try in 1 2 3; do
        as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" -R -X stream --checkpoint=fast --no-sync \
          >"$dir.basebackup.log" 2>&1 && break
        echo "pg_basebackup from port $primary failed (try $try of 3):" >&2
        cat "$dir.basebackup.log" >&2
        [ "$try" = 3 ] && exit 1
        find "$dir" -mindepth 1 -delete
        sleep 1
      done
      {
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        # The walreceiver introduces itself by the cluster name, which synchronous_standby_names names.
        echo "cluster_name = '$name'"
      } | as_pg tee -a "$dir/postgresql.conf" >/dev/null
    fi
    running || as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null ||
      { echo "the standby on port $port did not start; its log ends:" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
    if [ "$sync" = sync ]; then
      as_pg "$bin/psql" -h 127.0.0.1 -p "$primary" -U postgres -d postgres -Atqc \
        "ALTER SYSTEM SET synchronous_standby_names = '$name'" -c "SELECT pg_reload_conf()" >/dev/null
    fi
    # Streaming (and, with sync, waited for) before it returns, so a test's first commit is
    # replicated as configured.
    want=$([ "$sync" = sync ] && echo sync || echo async)
    for _ in $(seq 1 100); do
      as_pg "$bin/psql" -h 127.0.0.1 -p "$primary" -U postgres -d postgres -Atqc \
        "SELECT 1 FROM pg_stat_replication WHERE application_name = '$name' AND state = 'streaming' AND sync_state = '$want'" |
        grep -q 1 && break
      sleep 0.1
    done
    as_pg "$bin/psql" -h 127.0.0.1 -p "$primary" -U postgres -d postgres -Atqc \
      "SELECT 1 FROM pg_stat_replication WHERE application_name = '$name' AND sync_state = '$want'" | grep -q 1 ||
      {
        echo "the standby on port $port is not streaming ($want) from port $primary after 10 s; its log ends:" >&2
        tail -20 "$dir/server.log" >&2
        exit 1
      }
    echo "postgres://postgres@127.0.0.1:$port/vacancy"
    ;;
  promote)
    as_pg "$bin/pg_ctl" -D "$dir" -w -t 60 promote >/dev/null
    ;;
  walsender-stop)
    # Replication falls behind: every walsender of this primary stops (SIGSTOP) where it is.
    for pid in $(as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "SELECT pid FROM pg_stat_replication"); do
      kill -STOP "$pid"
    done
    ;;
  kill)
    # The postmaster and every backend at once, as a machine that loses power would.
    if [ -s "$dir/postmaster.pid" ]; then
      pid=$(head -1 "$dir/postmaster.pid")
      pkill -9 -P "$pid" 2>/dev/null || true
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
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
