#!/usr/bin/env python3
"""bench-median.py DIR LABEL RUNS: of sse-LABEL-run1.json … sse-LABEL-runRUNS.json, copies the
run with the median p99 to sse-LABEL.json (what the report shows), with every run's p99 (and,
for Vacancy, p99 from the log append) beside it under "repeats"."""
import json
import os
import sys

out, label, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
results = []
for run in range(1, runs + 1):
    path = os.path.join(out, f"sse-{label}-run{run}.json")
    if os.path.exists(path):
        with open(path) as f:
            results.append(json.load(f))
if not results:
    sys.exit(f"bench-median: no runs of {label} in {out}")


def p99(result, key="latency"):
    return (result.get(key) or {}).get("p99Milliseconds")


ordered = sorted(results, key=p99)
median = dict(ordered[(len(ordered) - 1) // 2])
median["repeats"] = {
    "p99Milliseconds": [p99(r) for r in results],
    "logP99Milliseconds": [p99(r, "logLatency") for r in results],
}
with open(os.path.join(out, f"sse-{label}.json"), "w") as f:
    json.dump(median, f, indent=2, sort_keys=True)
print(f"bench-median: {label}: p99 of {len(results)} runs " + ", ".join(f"{p99(r):.1f}" for r in results)
      + f" ms; the median run is sse-{label}.json")
