#!/usr/bin/env bash
# swift build with a short progress line every 100 steps (the full log goes to $BUILD_LOG),
# errors shown as they come; exits with swift build's status.
set -uo pipefail
log=${BUILD_LOG:-.build-log.txt}
mkdir -p "$(dirname "$log")"
swift build "$@" 2>&1 | tee "$log" | awk '
  /error:/ { print; fflush(); next }
  /Build complete/ { print; fflush(); next }
  /^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 100 == 0) { split($1, p, "/"); printf "    ... step %s of %s\n", substr(p[1], 2), substr(p[2], 1, length(p[2]) - 1); fflush() } }'
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "swift build $* failed (full log: $log)"; tail -40 "$log"; }
exit "$status"
