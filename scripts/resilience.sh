#!/usr/bin/env bash
# `make resilience` (also the last step of `make test`): the whole stack as separate
# processes on its own PostgreSQL cluster, proving DESIGN.md's invariants under a booking
# storm, kill -9 of every process in turn, LISTEN connections cut, stuck and vanishing
# subscribers, schemathesis and fuzzed /events, and token and rate-limit abuse.
# The services run as `make run` runs them, release builds, one process each (the build
# `make test` makes: release with testing enabled, see scripts/test-build.sh). Writes
# RESILIENCE.md. RESILIENCE_SCENARIOS=storm,kill,… runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
port=${RESILIENCE_PG_PORT:-54349}
out=.test-output/resilience
dir=$out/pg
mkdir -p "$out"
rm -f "$out"/*.log

. scripts/python-venv.sh

. scripts/test-build.sh
echo "==> building in release mode (the first build takes a few minutes)"
BUILD_LOG=.build/testing-build.log scripts/swift-build.sh "${TEST_BUILD[@]}" || exit 1
bin=$(swift build "${TEST_BUILD[@]}" --show-bin-path)

if [ ! -s "$out/tls/cert.pem" ]; then
  mkdir -p "$out/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$out/tls/key.pem" -out "$out/tls/cert.pem" >/dev/null 2>&1
fi

scripts/pg.sh destroy "$dir" "$port" >/dev/null 2>&1
trap 'pkill -f "$bin/vacancy-(bookings|availability|fanout|router)" 2>/dev/null; cp "$dir/server.log" "$out/pg-server.log" 2>/dev/null; scripts/pg.sh destroy "$dir" "$port" >/dev/null 2>&1' EXIT
echo "==> resilience: PostgreSQL on port $port (default durability)"
url=$(scripts/pg.sh start "$dir" "$port" | tail -1) || { echo "PostgreSQL did not start"; exit 1; }

"$bin/vacancy-bench" resilience --bin "$bin" --database-url "$url" --logs "$out" \
  --tls-cert "$out/tls/cert.pem" --tls-key "$out/tls/key.pem" \
  --postgres-restart "scripts/pg.sh restart $dir $port" \
  --postgres-crash "scripts/pg.sh kill $dir $port && scripts/pg.sh start $dir $port >/dev/null" \
  ${RESILIENCE_SCENARIOS:+--scenarios "$RESILIENCE_SCENARIOS"} ${RESILIENCE_ARGS:-}
