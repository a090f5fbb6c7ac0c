#!/usr/bin/env bash
# `make bench`: release build, a dedicated PostgreSQL cluster with default durability,
# the bookings service, and a fixed-rate booking load with the coalesced NOTIFY on and off.
# A LISTEN session stays open throughout, so NOTIFY does the work it would in production.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${BENCH_PG_PORT:-54359}
rate=${BENCH_RATE:-1500}
seconds=${BENCH_SECONDS:-20}
dir=.data/bench-pg
out=bench-results
mkdir -p "$out"

echo "==> building in release mode"
BUILD_LOG=.build/release-build.log scripts/swift-build.sh -c release || exit 1
bin=$(swift build -c release --show-bin-path)

psql_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- psql "$@"; else psql "$@"; fi; }

service_pid=""
stop_listener() { pkill -f "psql -h 127.0.0.1 -p $port" 2>/dev/null || true; }
cleanup() {
  [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true
  stop_listener
  scripts/pg.sh stop "$dir" "$port" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Each case gets a fresh cluster, so both start from the same empty tables.
run_case() {
  local notify=$1
  echo "==> NOTIFY $notify: fresh PostgreSQL cluster (port $port, default durability)"
  stop_listener
  scripts/pg.sh stop "$dir" "$port" >/dev/null 2>&1 || true
  rm -rf "$dir"
  url=$(scripts/pg.sh start "$dir" "$port" | tail -1)
  # A listener that keeps reading, as the calculator does (psql takes notifications between commands).
  printf 'LISTEN vacancy_changes;\nSELECT 1 \\watch 0.2\n' | psql_as -h 127.0.0.1 -p "$port" -U postgres -d vacancy -q >/dev/null 2>&1 &
  VACANCY_DATABASE_URL="$url" VACANCY_LOG_LEVEL=warning VACANCY_NOTIFY_CHANGES="$notify" \
    "$bin/vacancy-bookings" >"$out/bookings-notify-$notify.log" 2>&1 &
  service_pid=$!
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8081/readyz >/dev/null 2>&1 && break; sleep 0.2; done
  "$bin/vacancy-bench" bookings --rate "$rate" --duration "$seconds" --label "notify-$notify" --json "$out/bookings-notify-$notify.json"
  kill "$service_pid"; wait "$service_pid" 2>/dev/null || true
  service_pid=""
}

run_case on
run_case off

python3 - "$out" "$rate" <<'PY'
import json, sys
out, rate = sys.argv[1], sys.argv[2]
rows = [json.load(open(f"{out}/bookings-notify-{m}.json")) for m in ("on", "off")]
on, off = rows
ratio = on["bookingsPerSecond"] / off["bookingsPerSecond"] if off["bookingsPerSecond"] else 0
lines = [
    f"Bookings at a fixed offered rate of {rate}/s (open loop), bookings service and PostgreSQL on one 2-core machine.",
    "",
    "| NOTIFY | booked/s | p50 ms | p99 ms | p99.9 ms | max ms | outcomes |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
for r in rows:
    l = r["latency"]
    outcomes = " ".join(f"{k}={v}" for k, v in sorted(l["outcomes"].items()))
    lines.append(f"| {r['label'].split('-')[1]} | {r['bookingsPerSecond']:.0f} | {l['p50Milliseconds']:.2f} | {l['p99Milliseconds']:.2f} | {l['p999Milliseconds']:.2f} | {l['maxMilliseconds']:.1f} | {outcomes} |")
lines += ["", f"NOTIFY on sustains {ratio*100:.0f} % of NOTIFY off."]
open(f"{out}/bookings.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
