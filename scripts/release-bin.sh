#!/usr/bin/env bash
# Prints the folder of the release binaries `make run` and `make bench` start: VACANCY_BIN
# when set (nothing is built), else .build/'s after a release build (progress on stderr).
set -euo pipefail
if [ -n "${VACANCY_BIN:-}" ]; then
  echo "$VACANCY_BIN"
  exit 0
fi
echo "==> building in release mode (the first build takes a few minutes)" >&2
# Without run-time exclusivity checks (as the-benchmarker's and gRPC's Swift entries build):
# they cost the fan-out 1 % of its CPU per delivery over HTTP/1.1 and 6 % over HTTP/2, almost
# all inside SwiftNIO. `make test` builds with them on, so a violation still fails a test.
BUILD_LOG=.build/release-build.log scripts/swift-build.sh -c release -Xswiftc -enforce-exclusivity=unchecked >&2 || exit 1
swift build -c release --show-bin-path
