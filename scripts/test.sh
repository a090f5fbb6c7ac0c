#!/usr/bin/env bash
# `make test`: a throwaway PostgreSQL cluster, every test, the cluster stopped again.
set -uo pipefail
cd "$(dirname "$0")/.."
port=${TEST_PG_PORT:-54339}
out=.test-output
dir=$out/pg
mkdir -p "$out"
scripts/pg.sh destroy "$dir" "$port" >/dev/null 2>&1
# A throwaway cluster: its log is kept beside the test output, its data removed.
trap 'cp "$dir/server.log" "$out/pg-server.log" 2>/dev/null; scripts/pg.sh destroy "$dir" "$port" >/dev/null 2>&1' EXIT
echo "==> checking formatting (make lint; make format fixes it)"
swift format lint --strict --recursive Package.swift Shared Services Tests Benchmarks || { echo "formatting: run make format"; exit 1; }
echo "==> starting throwaway PostgreSQL on port $port"
# The tests run at once, each with its own database and services (TestDatabase.gate lets 40
# hold one at a time, each with up to about ten connections): room for 800.
PG_OPTIONS="-c max_connections=800" scripts/pg.sh start "$dir" "$port" fast >/dev/null || { echo "PostgreSQL did not start"; cat "$dir/server.log" 2>/dev/null; exit 1; }
export VACANCY_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
export VACANCY_TEST_OUTPUT="$PWD/$out"
. scripts/python-venv.sh
. scripts/test-build.sh
echo "==> building (release mode with testing enabled, shared with the resilience suite)"
BUILD_LOG="$out/build.log" scripts/swift-build.sh "${TEST_BUILD[@]}" --build-tests || exit 1
echo "==> running tests"
# In parallel: every test has its own database, services, ports and metrics. A watchdog: a
# stalled run fails after 15 minutes instead of holding CI for its 90. Output is line
# buffered, so a stalled run's log shows which tests started and never finished.
timeout --kill-after=10 900 stdbuf -oL -eL swift test "${TEST_BUILD[@]}" --skip-build --parallel 2>&1 | tee "$out/swift-test.log"
status=${PIPESTATUS[0]}
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  # Seen rarely: every test has passed and reported, but the test process never exits.
  if grep -Eq '^✔ Test run with [0-9]+ tests? .*passed' "$out/swift-test.log" && ! grep -q '^✘' "$out/swift-test.log"; then
    echo "==> warning: the test process did not exit after all tests passed (see docs/testing.md)"
    status=0
  else
    echo "==> the test run stalled and was stopped after 15 minutes"
  fi
fi
echo "==> tests finished with status $status"
scripts/pg.sh stop "$dir" "$port" >/dev/null 2>&1

# The resilience suite, on the same build; VACANCY_SKIP_RESILIENCE=1 leaves it out locally.
if [ "${VACANCY_SKIP_RESILIENCE:-}" != 1 ]; then
  echo "==> resilience suite (make resilience)"
  timeout --kill-after=10 1800 scripts/resilience.sh
  resilience=$?
  echo "==> resilience finished with status $resilience"
  [ "$status" = 0 ] && status=$resilience
fi
exit "$status"
