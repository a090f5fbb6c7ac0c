#!/usr/bin/env python3
"""Writes bench-results/summary.md from the JSON files of the last `make bench` cases."""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "bench-results"
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None

lines = ["# Last `make bench` (2-core machine, services and PostgreSQL on the same box)", ""]
on, off = load("bookings-notify-on.json"), load("bookings-notify-off.json")
if on and off:
    lines += [f"Bookings at a fixed offered rate of {on['offeredRate']}/s (open loop).", "",
              "| NOTIFY | booked/s | p50 ms | p99 ms | p99.9 ms | max ms | outcomes |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in (on, off):
        l = r["latency"]
        outcomes = " ".join(f"{k}={v}" for k, v in sorted(l["outcomes"].items()))
        lines.append(f"| {r['label'].split('-')[1]} | {r['bookingsPerSecond']:.0f} | {l['p50Milliseconds']:.2f} | {l['p99Milliseconds']:.2f} "
                     f"| {l['p999Milliseconds']:.2f} | {l['maxMilliseconds']:.1f} | {outcomes} |")
    ratio = on["bookingsPerSecond"] / off["bookingsPerSecond"] if off["bookingsPerSecond"] else 0
    lines += ["", f"NOTIFY on sustains {ratio*100:.0f} % of NOTIFY off.", ""]
drain = load("drain.json")
if drain:
    verdict = "meets" if drain["changesPerSecond"] >= 5000 else "MISSES"
    lines += ["Calculator draining a backlog (target ≥ 5,000 changes/s):", "",
              "| backlog | events appended | seconds | changes/s | events/s | target |", "| --- | --- | --- | --- | --- | --- |",
              f"| {drain['changes']} | {drain['events']} | {drain['seconds']:.2f} | {drain['changesPerSecond']:.0f} | {drain['eventsPerSecond']:.0f} | {verdict} |", ""]
latency, load_ = load("event-latency.json"), load("latency-load.json")
if latency and load_:
    verdict = "meets" if latency["p99Milliseconds"] < 20 else "MISSES"
    lines += [f"Booking commit → its event committed, at {load_['offeredRate']}/s offered ({load_['bookingsPerSecond']:.0f}/s booked), "
              "from PostgreSQL commit timestamps (target p99 < 20 ms):", "",
              "| bookings | p50 ms | p99 ms | p99.9 ms | max ms | target |", "| --- | --- | --- | --- | --- | --- |",
              f"| {latency['count']} | {latency['p50Milliseconds']:.2f} | {latency['p99Milliseconds']:.2f} | {latency['p999Milliseconds']:.2f} "
              f"| {latency['maxMilliseconds']:.1f} | {verdict} |", ""]
sse_names = ["vacancy-h1-1k-per-session", "vacancy-h1-1k", "nchan-h1-1k", "vacancy-h2-1k", "nchan-h2-1k", "vacancy-h2-10k", "nchan-h2-10k",
             "vacancy-h1-10k", "nchan-h1-10k", "vacancy-h2-50k", "nchan-h2-50k"]
sse = [r for r in (load(f"sse-{n}.json") for n in sse_names) if r]
if sse:
    lines += ["SSE fan-out (Vacancy) and Nchan under the same subscriber workloads; events driven by bookings (Vacancy) or "
              "by POSTs to Nchan's publisher; latency from the event's own timestamp (the booking transaction's for Vacancy, "
              "the publish for Nchan) to the subscriber reading it. Targets: p99 < 50 ms at 1,000 subscribers and 200 "
              "bookings/s; 50,000 deliveries/s; 10,000 subscribers at < 10 KiB each. Server KiB/subscriber: the server's "
              "resident memory growth over its idle start, divided by the subscribers, once all are open (before events flow) "
              "and at the end of the measured window (under load). Server CPU: the server's processes' CPU time in the "
              "measured window, per delivery; reader: the load generator's own; machine: every process's and the kernel's "
              "together. CPU steal: the share of the "
              "machine's time its hypervisor gave to other guests during the run (a run with much of it measured a slower "
              "machine). From publish: Vacancy's latency from the event's append to its log (`events.created_at`), the "
              "point that matches a publish to Nchan; Nchan's is its p50/p99 again. The shared workloads run "
              "BENCH_SSE_REPEATS times on each server, the servers taking turns; each row is the run with the median p99, "
              "and the p99 of every run is beside it.", "",
              "| run | subscribers | events | deliveries | missing | out of order | deliveries/s | p50 ms | p99 ms | p99.9 ms | from publish p50 / p99 ms | p99 of each run ms | server KiB/subscriber open | under load | CPU µs/delivery server / reader / machine | CPU steal |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sse:
        l = r["latency"]
        kib = f"{r['kibPerSubscriber']:.1f}" if r.get("kibPerSubscriber") is not None else "n/a"
        steal = f"{r['cpuStealPercent']:.0f} %" if r.get("cpuStealPercent") is not None else "n/a"
        loaded = f"{r['kibPerSubscriberUnderLoad']:.1f}" if r.get("kibPerSubscriberUnderLoad") is not None else "n/a"
        cpu = " / ".join(f"{r[k]:.1f}" if r.get(k) is not None else "n/a"
                         for k in ("serverCPUMicrosPerDelivery", "readerCPUMicrosPerDelivery", "machineCPUMicrosPerDelivery"))
        published = r.get("logLatency") or (l if r["label"].startswith("nchan") else None)
        from_publish = f"{published['p50Milliseconds']:.1f} / {published['p99Milliseconds']:.1f}" if published else "n/a"
        runs = ", ".join(f"{v:.0f}" for v in (r.get("repeats") or {}).get("p99Milliseconds", [])) or "one run"
        lines.append(f"| {r['label']} | {r['subscribers']} {r['transport']} | {r['eventsDriven']} | {r['deliveries']} | {r['missing']} "
                     f"| {r['outOfOrder']} | {r['deliveriesPerSecond']:.0f} | {l['p50Milliseconds']:.2f} | {l['p99Milliseconds']:.2f} "
                     f"| {l['p999Milliseconds']:.2f} | {from_publish} | {runs} | {kib} | {loaded} | {cpu} | {steal} |")
    lines.append("")
    resumed = [r for r in sse if r.get("reconnect")]
    if resumed:
        lines += ["Every connection dropped at once while events flow, and every subscriber reopened with `Last-Event-ID` "
                  "(target: all back within 15 s, every stream exact, none of it read from the log table). Exact: across "
                  "the drop each subscriber read every event once, in order (missing and out of order above count the "
                  "whole run).", "",
                  "| run | subscribers back | seconds until the last was back | server resumes | log-table reads for them | target |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in resumed:
            c = r["reconnect"]
            table = c.get("tableReads")
            ok = (c["subscribers"] == r["subscribers"] and c["seconds"] <= 15 and r["missing"] == 0 and r["outOfOrder"] == 0
                  and (table is None or table == 0))
            lines.append(f"| {r['label']} | {c['subscribers']} of {r['subscribers']} | {c['seconds']:.2f} "
                         f"| {c.get('resumes') if c.get('resumes') is not None else 'n/a'} | {table if table is not None else 'n/a'} "
                         f"| {'meets' if ok else 'MISSES'} |")
        lines.append("")
waitlist = load("waitlist.json")
if waitlist:
    l = waitlist["latency"]
    verdict = "meets" if l["p50Milliseconds"] <= 10 and l["p99Milliseconds"] <= 50 and waitlist["missing"] == 0 else "MISSES"
    lines += [f"Waitlist: a full session with {waitlist['entries']} waiting, each customer on their own `user.{{customer_id}}` "
              f"stream; its seats cancelled at {waitlist['cancelRate']}/s, each cancel offering the seat to the next in line. "
              "Latency from the cancel's commit (PostgreSQL's commit timestamp) to its `waitlist.updated` offer read by the "
              "customer's subscriber (target p50 ≤ 10 ms, p99 ≤ 50 ms, none missing); position events: the moved positions "
              "the streams carried meanwhile.", "",
              "| waiting | cancels/s | offers | missing | position events | p50 ms | p99 ms | p99.9 ms | max ms | target |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
              f"| {waitlist['entries']} | {waitlist['cancelRate']} | {waitlist['offers']} | {waitlist['missing']} | {waitlist['otherEvents']} "
              f"| {l['p50Milliseconds']:.2f} | {l['p99Milliseconds']:.2f} | {l['p999Milliseconds']:.2f} | {l['maxMilliseconds']:.1f} | {verdict} |", ""]
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines))
print("\n".join(lines))
