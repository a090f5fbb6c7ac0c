#!/usr/bin/env bash
# `make run`: PostgreSQL in .data/, a release build, demo sessions, all four services with
# prefixed logs, a self-signed certificate for https://localhost:8443. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PG_PORT:-54329}

echo "==> PostgreSQL in .data/pg (port $port)"
url=$(scripts/pg.sh start .data/pg "$port" | tail -1)

echo "==> building in release mode (the first build takes a few minutes)"
BUILD_LOG=.build/release-build.log scripts/swift-build.sh -c release || exit 1
bin=$(swift build -c release --show-bin-path)

if [ -z "${VACANCY_TLS_CERT:-}" ]; then
  mkdir -p .data/tls
  if [ ! -s .data/tls/cert.pem ]; then
    echo "==> making a self-signed certificate for localhost in .data/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout .data/tls/key.pem -out .data/tls/cert.pem >/dev/null 2>&1
  fi
  export VACANCY_TLS_CERT=$PWD/.data/tls/cert.pem VACANCY_TLS_KEY=$PWD/.data/tls/key.pem
fi

export VACANCY_DATABASE_URL="$url"
export VACANCY_DEMO=1
export VACANCY_WEB_ROOT=$PWD/Services/Router/Web
pids=()
start() {
  local name=$1
  ("$bin/vacancy-$name" 2>&1 | sed -u "s/^/[$name] /") &
  pids+=($!)
}
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping services"
  pkill -TERM -f "$bin/vacancy-" 2>/dev/null || true
  wait 2>/dev/null || true
  echo "==> stopping PostgreSQL (data stays in .data/pg)"
  scripts/pg.sh stop .data/pg "$port" >/dev/null 2>&1 || true
}
trap stop_all EXIT
trap "exit 0" INT TERM

wait_ready() {
  local name=$1 port=$2
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$name did not become ready on port $port"; exit 1
}

start bookings
wait_ready bookings 8081
scripts/seed-demo.sh http://127.0.0.1:8081 "${VACANCY_DEV_KEY:-vacancy-dev-key}"
start availability
start fanout
start router
wait_ready router 8080
echo
echo "==> Vacancy is running: http://localhost:8080  (and https://localhost:8443, HTTP/2, self-signed)"
echo "    API through the router, or bookings directly on :8081 with 'Authorization: Bearer vacancy-dev-key'"
echo "    \`make demo-traffic\` in another terminal makes the page move; Ctrl-C here stops everything"
wait
