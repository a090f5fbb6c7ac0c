#!/usr/bin/env bash
# `make bench`: release build, then each case on a fresh PostgreSQL cluster with default
# durability, all on this machine:
#   bookings  — fixed-rate booking load with the coalesced NOTIFY on and off (a LISTEN
#               session stays open, so NOTIFY does the work it would in production);
#   drain     — the calculator draining a backlog of 100,000 changes;
#   latency   — booking commit → event commit at 500 bookings/s, bookings + calculator;
#   sse       — the fan-out under N subscribers (HTTP/1.1 and HTTP/2), events driven by
#               bookings: deliveries/s, booking → subscriber latency, memory per subscriber;
#   nchan     — the same subscriber workloads against Nchan (nginx), published over HTTP;
#   sse50k    — 50,000 HTTP/2 subscribers on one fan-out instance (then on Nchan): memory,
#               then every connection dropped at once and all resumed by Last-Event-ID;
#   waitlist  — a full session with 1,000 waiting, each on its own private stream, seats
#               cancelled at 100/s: cancel commit → offer at the customer's subscriber.
# BENCH_CASES picks cases (default: all). Results: bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-54359}
rate=${BENCH_RATE:-1500}
seconds=${BENCH_SECONDS:-20}
backlog=${BENCH_BACKLOG:-100000}
latency_rate=${BENCH_LATENCY_RATE:-500}
cases=${BENCH_CASES:-bookings drain latency sse nchan sse50k waitlist}
sse_seconds=${BENCH_SSE_SECONDS:-15}
sse_wide_rate=${BENCH_SSE_WIDE_RATE:-5}
sse_repeats=${BENCH_SSE_REPEATS:-3}
sse_50k_rate=${BENCH_SSE_50K_RATE:-2}
# 10,000 HTTP/1.1 subscribers take a descriptor each on both sides: as many as may be had.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
waitlist_entries=${BENCH_WAITLIST_ENTRIES:-1000}
waitlist_rate=${BENCH_WAITLIST_RATE:-100}
dir=.data/bench-pg
out=bench-results
mkdir -p "$out"

# VACANCY_BIN runs binaries built elsewhere (no build), as for `make run`.
bin=$(scripts/release-bin.sh)

psql_as() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- psql "$@"); else psql "$@"; fi; }
sql() { psql_as -h 127.0.0.1 -p "$port" -U postgres -d vacancy -v ON_ERROR_STOP=1 -Atqc "$1"; }

pids=()
stop_listener() { pkill -f "psql -h 127.0.0.1 -p $port" 2>/dev/null || true; }
stop_services() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_services
  stop_nchan
  stop_listener
  scripts/pg.sh stop "$dir" "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# fresh_cluster [POSTGRES_OPTIONS]: a new cluster (e.g. "-c track_commit_timestamp=on").
fresh_cluster() {
  stop_services
  stop_listener
  scripts/pg.sh destroy "$dir" "$port" >/dev/null 2>&1 || true
  url=$(PG_OPTIONS="${1:-}" scripts/pg.sh start "$dir" "$port" | tail -1)
}

# start NAME HEALTH_URL [VAR=value …]: runs vacancy-NAME with the settings, waits for /readyz.
start() {
  local name=$1 ready=$2
  shift 2
  env VACANCY_DATABASE_URL="$url" VACANCY_LOG_LEVEL=warning "$@" "$bin/vacancy-$name" >>"$out/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 150); do curl -fs "$ready" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "vacancy-$name did not become ready; see $out/$name.log" >&2
  return 1
}

bookings_case() {
  local notify=$1
  echo "==> bookings, NOTIFY $notify: fresh PostgreSQL cluster (port $port, default durability)"
  fresh_cluster
  # A listener that keeps reading, as the calculator does (psql takes notifications between commands).
  printf 'LISTEN vacancy_changes;\nSELECT 1 \\watch 0.2\n' | psql_as -h 127.0.0.1 -p "$port" -U postgres -d vacancy -q >/dev/null 2>&1 &
  start bookings http://127.0.0.1:8081/readyz VACANCY_NOTIFY_CHANGES="$notify"
  "$bin/vacancy-bench" bookings --rate "$rate" --duration "$seconds" --label "notify-$notify" --json "$out/bookings-notify-$notify.json"
  stop_services
}

drain_case() {
  echo "==> drain: fresh cluster, $backlog changes waiting before the calculator starts"
  fresh_cluster
  start availability http://127.0.0.1:8082/readyz  # migrates
  stop_services
  sql "INSERT INTO sessions (id, course_type, location, starts_at, ends_at, capacity, booked)
       SELECT gen_random_uuid(), 'Bench ' || (g % 4), 'Bench Hall', now() + interval '3 days' + g * interval '1 hour',
              now() + interval '3 days' + g * interval '1 hour' + interval '1 hour', 100000, 1000
       FROM generate_series(1, 200) g"
  sql "INSERT INTO bookings (id, session_id, customer_id, adult_count, child_count, seats, status)
       SELECT gen_random_uuid(), s.id, 'bench-' || (g % 5000), 1, 0, 1, 'confirmed'
       FROM generate_series(1, $backlog) g
       JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM sessions) s ON s.n = g % 200"
  sql "INSERT INTO changes (session_id, booking_id, kind) SELECT session_id, id, 'booking.created' FROM bookings ORDER BY created_at, id"
  sql "VACUUM ANALYZE"
  # The watcher counts the backlog before the calculator starts.
  "$bin/vacancy-bench" drain --database-url "$url" --json "$out/drain.json" &
  local watcher=$!
  sleep 1
  start availability http://127.0.0.1:8082/readyz
  wait "$watcher"
  stop_services
}

latency_case() {
  echo "==> latency: fresh cluster with commit timestamps, bookings + calculator, $latency_rate bookings/s"
  fresh_cluster "-c track_commit_timestamp=on"
  start bookings http://127.0.0.1:8081/readyz
  start availability http://127.0.0.1:8082/readyz
  "$bin/vacancy-bench" bookings --rate "$latency_rate" --duration "$seconds" --label "latency-load" --json "$out/latency-load.json"
  for _ in $(seq 1 100); do [ "$(sql 'SELECT count(*) FROM changes')" = 0 ] && break; sleep 0.1; done
  "$bin/vacancy-bench" event-latency --database-url "$url" --label "commit-to-event" --json "$out/event-latency.json"
  stop_services
}

tls_pair() {
  mkdir -p "$out/tls"
  [ -f "$out/tls/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
    -keyout "$out/tls/key.pem" -out "$out/tls/cert.pem" >/dev/null 2>&1
}

# The four shared subscriber workloads. Every subscriber follows the one all-sessions topic,
# so each event goes to all of them (the worst case): 1,000 subscribers at 200 events/s
# (HTTP/1.1, then HTTP/2), and 10,000 subscribers (HTTP/2 with 100 streams per connection,
# then HTTP/1.1 with a connection each) at 5 events/s for memory and 50,000 deliveries/s.
shared_workloads=("h1-1k http1 1000 200" "h2-1k http2 1000 200" "h2-10k http2 10000 $sse_wide_rate" "h1-10k http1 10000 $sse_wide_rate")

# shared_run SERVER WORKLOAD RUN: one run of a shared workload against vacancy or nchan, the
# server restarted first so its memory starts clean (the other one stopped).
shared_run() {
  local server=$1 run=$3
  local name transport subscribers rate
  read -r name transport subscribers rate <<<"$2"
  local target args
  if [ "$server" = vacancy ]; then
    stop_nchan
    restart_fanout
    [ "$transport" = http1 ] && target="http://127.0.0.1:8083/events?topic=availability" \
      || target="https://127.0.0.1:8483/events?topic=availability"
    # --database-url: each delivery is also timed from its event's append to the log, the
    # point that matches a publish to Nchan.
    args=(--server-pid "$fanout_pid" --drive vacancy --bookings-url http://127.0.0.1:8081 --database-url "$url")
  else
    stop_fanout
    restart_nchan
    [ "$transport" = http1 ] && target="http://127.0.0.1:8090/events" || target="https://127.0.0.1:8490/events"
    args=($(nchan_pids) --drive publish --publish-url http://127.0.0.1:8090/pub)
  fi
  "$bin/vacancy-bench" sse --label "$server-$name" --url "$target" --transport "$transport" --subscribers "$subscribers" \
    --rate "$rate" --duration "$sse_seconds" "${args[@]}" --json "$out/sse-$server-$name-run$run.json"
}

# shared_workloads_for SERVER…: each shared workload BENCH_SSE_REPEATS times (default 3) on
# each server, the servers taking turns run by run, so a slow minute of this machine falls on
# both alike. sse-SERVER-WORKLOAD.json is then the run with the median p99 of its repeats.
shared_workloads_for() {
  local workload server run name
  for workload in "${shared_workloads[@]}"; do
    name=${workload%% *}
    for run in $(seq 1 "$sse_repeats"); do
      for server in "$@"; do
        echo "==> $server $name, run $run of $sse_repeats"
        shared_run "$server" "$workload" "$run"
      done
    done
    for server in "$@"; do python3 scripts/bench-median.py "$out" "$server-$name" "$sse_repeats"; done
  done
  stop_fanout
  stop_nchan
}

fanout_pid=
restart_fanout() {
  if [ -n "$fanout_pid" ]; then kill "$fanout_pid" 2>/dev/null && wait "$fanout_pid" 2>/dev/null || true; fi
  start fanout http://127.0.0.1:8083/readyz VACANCY_TLS_CERT="$out/tls/cert.pem" VACANCY_TLS_KEY="$out/tls/key.pem" \
    VACANCY_MAX_SUBSCRIBERS="${max_subscribers:-25000}"
  fanout_pid=${pids[-1]}
}
stop_fanout() {
  if [ -n "$fanout_pid" ]; then kill "$fanout_pid" 2>/dev/null && wait "$fanout_pid" 2>/dev/null || true; fi
  fanout_pid=
}

# A fresh cluster with the bookings service and the calculator; the fan-out is started by
# restart_fanout.
vacancy_stack() {
  fresh_cluster
  tls_pair
  start bookings http://127.0.0.1:8081/readyz
  start availability http://127.0.0.1:8082/readyz
  fanout_pid=
}

sse_case() {
  echo "==> sse: fresh cluster; bookings, calculator and fan-out; subscribers on topic availability"
  vacancy_stack
  # As a calendar page subscribes: 1,000 subscribers spread over the 20 sessions' topics.
  restart_fanout
  "$bin/vacancy-bench" sse --label "vacancy-h1-1k-per-session" --transport http1 --subscribers 1000 --rate 200 \
    --url "http://127.0.0.1:8083/events?topic=availability.session.{session}" --duration "$sse_seconds" \
    --server-pid "$fanout_pid" --drive vacancy --bookings-url http://127.0.0.1:8081 --database-url "$url" \
    --json "$out/sse-vacancy-h1-1k-per-session.json"
  # With the nchan case too, the shared workloads run on both servers in turn.
  if [[ " $cases " == *" nchan "* ]] && nchan_config; then
    nchan_taken=1
    shared_workloads_for vacancy nchan
  else
    shared_workloads_for vacancy
  fi
  stop_services
}

# Fifty thousand HTTP/2 subscribers (500 connections of 100 streams) on one fan-out
# instance, then on Nchan: memory per subscriber open and under load; then every connection
# is dropped at once and every subscriber reopened with Last-Event-ID while events flow:
# all back, every stream exact, and (for Vacancy) no resume read from the log table.
sse50k_case() {
  echo "==> sse50k: fresh cluster; 50,000 HTTP/2 subscribers on one fan-out instance, then all dropped and resumed"
  vacancy_stack
  max_subscribers=60000 restart_fanout
  "$bin/vacancy-bench" sse --label "vacancy-h2-50k" --url "https://127.0.0.1:8483/events?topic=availability" --transport http2 \
    --subscribers 50000 --rate "$sse_50k_rate" --duration "$sse_seconds" --server-pid "$fanout_pid" \
    --drive vacancy --bookings-url http://127.0.0.1:8081 --database-url "$url" --reconnect-all \
    --metrics-url http://127.0.0.1:8083/metrics --json "$out/sse-vacancy-h2-50k.json"
  stop_services
  nchan_config || { echo "no Nchan beside it" >&2; return 0; }
  restart_nchan
  "$bin/vacancy-bench" sse --label "nchan-h2-50k" --url "https://127.0.0.1:8490/events" --transport http2 \
    --subscribers 50000 --rate "$sse_50k_rate" --duration "$sse_seconds" $(nchan_pids) \
    --drive publish --publish-url http://127.0.0.1:8090/pub --reconnect-all --json "$out/sse-nchan-h2-50k.json"
  stop_nchan
}

nginx_dir=$PWD/.data/bench-nchan
stop_nchan() {
  if [ -f "$nginx_dir/nginx.pid" ]; then
    kill "$(cat "$nginx_dir/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$nginx_dir/nginx.pid" ] || break; sleep 0.1; done
  fi
}
restart_nchan() {
  stop_nchan
  nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -e "$nginx_dir/error.log"
  for _ in $(seq 1 50); do curl -fs http://127.0.0.1:8090/ready >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "nginx with Nchan did not start; see $nginx_dir/error.log" >&2
  return 1
}
nchan_pids() { for pid in $(pgrep -P "$(cat "$nginx_dir/nginx.pid")"); do printf -- "--server-pid %s " "$pid"; done; }

# nchan_config: nginx's configuration for Nchan in $nginx_dir; fails when the module is missing.
nchan_config() {
  local module=/usr/lib/nginx/modules/ngx_nchan_module.so
  [ -f "$module" ] || { echo "libnginx-mod-nchan is not installed (make deps-bench)" >&2; return 1; }
  tls_pair
  rm -rf "$nginx_dir" && mkdir -p "$nginx_dir/logs"
  sed -e "s|@MODULE@|$module|g" -e "s|@DIR@|$nginx_dir|g" -e "s|@TLS@|$PWD/$out/tls|g" scripts/nchan.conf.in >"$nginx_dir/nginx.conf"
}

nchan_case() {
  # With the sse case, Nchan's runs took turns with Vacancy's there.
  [ -n "${nchan_taken:-}" ] && return 0
  echo "==> nchan: $(nginx -v 2>&1 | sed 's/^.*: //') with Nchan, the same subscriber workloads, published over HTTP"
  nchan_config || return 1
  shared_workloads_for nchan
}

waitlist_case() {
  echo "==> waitlist: fresh cluster with commit timestamps; bookings, calculator and fan-out; $waitlist_entries waiting, cancels at $waitlist_rate/s"
  fresh_cluster "-c track_commit_timestamp=on"
  start bookings http://127.0.0.1:8081/readyz
  start availability http://127.0.0.1:8082/readyz
  start fanout http://127.0.0.1:8083/readyz
  "$bin/vacancy-bench" waitlist --database-url "$url" --entries "$waitlist_entries" --rate "$waitlist_rate" --json "$out/waitlist.json"
  stop_services
}

for c in $cases; do
  case $c in
    bookings) bookings_case on; bookings_case off ;;
    drain) drain_case ;;
    latency) latency_case ;;
    sse) sse_case ;;
    nchan) nchan_case ;;
    sse50k) sse50k_case ;;
    waitlist) waitlist_case ;;
    *) echo "unknown bench case $c" >&2; exit 2 ;;
  esac
done

python3 scripts/bench-report.py "$out"
