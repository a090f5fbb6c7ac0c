#!/usr/bin/env bash
# scripts/stop.sh PIDFILE: stops the services `make run` started from this checkout, by the
# process ids it recorded ("name pid" lines), and nothing else: a pid is signalled only
# while it still runs vacancy-NAME. `--check PIDFILE` only says (by its status) whether any runs.
set -uo pipefail
check=0
[ "${1:-}" = --check ] && { check=1; shift; }
pidfile=${1:?usage: stop.sh [--check] PIDFILE}
[ -s "$pidfile" ] || exit $((check))

# ours PID NAME: the process PID is still vacancy-NAME (a recycled pid is left alone).
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' <"/proc/$1/cmdline" | head -1 | grep -q "/vacancy-$2\$"; }

alive=()
while read -r name pid; do
  [ -n "$pid" ] && ours "$pid" "$name" && alive+=("$pid")
done <"$pidfile"
if [ "$check" = 1 ]; then [ ${#alive[@]} -gt 0 ]; exit; fi
[ ${#alive[@]} = 0 ] && { : >"$pidfile"; exit 0; }
# Tells `make run` that its services end because they were asked to.
touch "$(dirname "$pidfile")/stopping"
kill -TERM "${alive[@]}" 2>/dev/null
for _ in $(seq 1 100); do
  remaining=()
  for pid in "${alive[@]}"; do kill -0 "$pid" 2>/dev/null && remaining+=("$pid"); done
  [ ${#remaining[@]} = 0 ] && break
  sleep 0.1
done
[ ${#remaining[@]} -gt 0 ] && kill -KILL "${remaining[@]}" 2>/dev/null
: >"$pidfile"
exit 0
