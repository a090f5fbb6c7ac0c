#!/usr/bin/env bash
# `make run`: PostgreSQL in .data/, a release build, demo sessions, all four services with
# prefixed logs. Ctrl-C stops the services (the cluster keeps running; `make stop` ends it).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PG_PORT:-54329}

echo "==> PostgreSQL in .data/pg (port $port)"
url=$(scripts/pg.sh start .data/pg "$port" | tail -1)

echo "==> building in release mode (the first build takes a few minutes)"
BUILD_LOG=.build/release-build.log scripts/swift-build.sh -c release || exit 1
bin=$(swift build -c release --show-bin-path)

export VACANCY_DATABASE_URL="$url"
export VACANCY_DEMO=1
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
}
trap stop_all INT TERM EXIT

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
echo "==> Vacancy is running: http://localhost:8080   (bookings API on :8081, key vacancy-dev-key; Ctrl-C stops)"
wait
