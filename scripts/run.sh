#!/usr/bin/env bash
# `make run`: PostgreSQL in .data/, a release build, demo sessions, all four services with
# prefixed logs, a self-signed certificate for https://localhost:8443. Ctrl-C (or `make
# stop` from another terminal) stops it all.
# The usual service variables are honoured (VACANCY_API_KEYS, VACANCY_*_PORT, …);
# VACANCY_DATA_DIR moves .data/ and VACANCY_BIN runs binaries built elsewhere (no build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/demo-key.sh
port=${PG_PORT:-54329}
data=${VACANCY_DATA_DIR:-.data}
mkdir -p "$data/run"
data=$(cd "$data" && pwd)
pidfile=$data/run/pids
bookings_port=${VACANCY_BOOKINGS_PORT:-8081}
router_port=${VACANCY_ROUTER_PORT:-8080}
tls_port=${VACANCY_ROUTER_TLS_PORT:-8443}
export VACANCY_BOOKINGS_URL=${VACANCY_BOOKINGS_URL:-http://127.0.0.1:$bookings_port}
export VACANCY_AVAILABILITY_URL=${VACANCY_AVAILABILITY_URL:-http://127.0.0.1:${VACANCY_AVAILABILITY_PORT:-8082}}
export VACANCY_FANOUT_URL=${VACANCY_FANOUT_URL:-http://127.0.0.1:${VACANCY_FANOUT_PORT:-8083}}

if [ -s "$pidfile" ] && scripts/stop.sh --check "$pidfile"; then
  echo "Vacancy is already running from this checkout (pids in $pidfile): \`make stop\` ends it first."
  exit 1
fi

echo "==> PostgreSQL in $data/pg (port $port)"
url=$(scripts/pg.sh start "$data/pg" "$port" | tail -1)

bin=$(scripts/release-bin.sh)

if [ -z "${VACANCY_TLS_CERT:-}" ]; then
  mkdir -p "$data/tls"
  if [ ! -s "$data/tls/cert.pem" ]; then
    echo "==> making a self-signed certificate for localhost in $data/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$data/tls/key.pem" -out "$data/tls/cert.pem" >/dev/null 2>&1
  fi
  export VACANCY_TLS_CERT=$data/tls/cert.pem VACANCY_TLS_KEY=$data/tls/key.pem
fi

export VACANCY_DATABASE_URL="$url"
export VACANCY_DEMO=1
# The demo venues are in London: sessions at 09:00 there, summer time or not.
export VACANCY_TIME_ZONE=${VACANCY_TIME_ZONE:-Europe/London}
export VACANCY_DEMO_KEY
VACANCY_DEMO_KEY=$(demo_key)
export VACANCY_WEB_ROOT=${VACANCY_WEB_ROOT:-$PWD/Services/Router/Web}
# `make demo-traffic` in another terminal reads the key from here (only this user can).
(umask 077 && printf '%s\n' "$VACANCY_DEMO_KEY" >"$data/run/demo-key")
: >"$pidfile"
rm -f "$data/run/stopping"
# start NAME: runs vacancy-NAME with its log lines prefixed, and records its pid.
start() {
  local name=$1
  "$bin/vacancy-$name" > >(sed -u "s/^/[$name] /") 2>&1 &
  echo "$name $!" >>"$pidfile"
}
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping services"
  scripts/stop.sh "$pidfile" || true
  echo "==> stopping PostgreSQL (data stays in $data/pg)"
  scripts/pg.sh stop "$data/pg" "$port" >/dev/null 2>&1 || true
}
trap stop_all EXIT
trap "exit 0" INT TERM

# wait_ready NAME PORT: until its /readyz answers; stops everything if it exits instead.
wait_ready() {
  local name=$1 port=$2 pid
  pid=$(awk -v n="$name" '$1 == n { print $2 }' "$pidfile")
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      [ -e "$data/run/stopping" ] && { echo "==> stopped by make stop"; exit 0; }
      echo "==> vacancy-$name exited during start-up: its last lines above say why"; exit 1
    fi
    sleep 0.2
  done
  echo "==> vacancy-$name did not become ready on port $port within 30 s"; exit 1
}

start bookings
wait_ready bookings "$bookings_port"
scripts/seed-demo.sh "http://127.0.0.1:$bookings_port" "$VACANCY_DEMO_KEY"
start availability
start fanout
start router
wait_ready router "$router_port"
echo
echo "==> Vacancy is running: http://localhost:$router_port  (and https://localhost:$tls_port, HTTP/2, self-signed)"
echo "    API through the router, or bookings directly on :$bookings_port with 'Authorization: Bearer <your API key>'"
echo "    \`make demo-traffic\` in another terminal makes the page move; Ctrl-C here or \`make stop\` stops everything"
# Until a service exits: by `make stop` (which leaves run/stopping behind), or on its own.
wait -n || true
if [ -e "$data/run/stopping" ]; then
  echo "==> stopped by make stop"
  exit 0
fi
while read -r name pid; do
  kill -0 "$pid" 2>/dev/null || echo "==> vacancy-$name exited on its own: its last lines above say why; stopping the rest"
done <"$pidfile"
exit 1
