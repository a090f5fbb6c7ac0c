#!/usr/bin/env bash
# The one build `make test` and `make resilience` share: release mode with testing enabled
# (so the test targets can `@testable import`), in a scratch directory of its own so that
# switching between `make test` and `make run` (plain release, in .build/) rebuilds neither.
# Sourced: defines TEST_BUILD, the flags for `swift build` and `swift test`.
TEST_BUILD=(-c release -Xswiftc -enable-testing --scratch-path .build/testing)
