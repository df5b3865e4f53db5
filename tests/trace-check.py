#!/usr/bin/env python3
# Checks a trace of zdevd --trace with a real JSON parser, for
# tests/test-trace.sh:
#
#   trace-check.py TRACE [KEY=VALUE...]
#
# The structure: a JSON array of events, each with name, ph, ts, pid and tid,
# every X event with a duration, every track named by process_name and
# thread_name metadata, the file ended by trace_end. Then the totals the
# events add up to, compared with each KEY=VALUE given (the keys of
# zdev-run --stats-json): cpu_faults, pages_to_device, pages_to_system,
# exclusive_grants, exclusive_revokes. Prints the totals; exit 1 with a
# line per failure.
import json
import sys

DEVICE_PID_BASE = 4194305


def main():
    path = sys.argv[1]
    want = dict(a.split("=", 1) for a in sys.argv[2:])
    failures = []
    with open(path) as f:
        events = json.load(f)
    if not isinstance(events, list) or not events:
        print(f"FAIL: {path}: not a JSON array of events")
        return 1
    named_pids, named_tids, used = set(), set(), set()
    for i, e in enumerate(events):
        missing = [k for k in ("name", "ph", "ts", "pid", "tid") if k not in e]
        if missing:
            failures.append(f"event {i} lacks {missing}: {e}")
            continue
        if e["ph"] == "X" and not isinstance(e.get("dur"), (int, float)):
            failures.append(f"X event {i} without a duration: {e}")
        if e["ph"] == "M" and e["name"] == "process_name":
            named_pids.add(e["pid"])
        elif e["ph"] == "M" and e["name"] == "thread_name":
            named_tids.add((e["pid"], e["tid"]))
        elif e["ph"] in ("X", "i") and e["name"] != "trace_end":
            used.add((e["pid"], e["tid"]))
    for pid, tid in sorted(used):
        if pid not in named_pids:
            failures.append(f"process {pid} has events but no process_name")
        if (pid, tid) not in named_tids:
            failures.append(f"thread {pid}/{tid} has events but no thread_name")
    if events[-1].get("name") != "trace_end":
        failures.append("the last event is not trace_end: the file was not closed")
    if not any(e.get("ph") == "C" and e.get("pid", 0) >= DEVICE_PID_BASE for e in events):
        failures.append("no device_memory counter on a device's track")

    def total(names, key):
        return sum(e["args"][key] for e in events if e.get("name") in names and "args" in e)

    got = {
        "cpu_faults": sum(1 for e in events if e.get("name") == "cpu_fault"),
        "pages_to_device": total(("migrate_to_device",), "pages"),
        "pages_to_system": total(("cpu_fault", "exclusive_revoke", "migrate_to_system", "evict",
                                  "device_access_back"), "pages"),
        "exclusive_grants": total(("exclusive_grant",), "count"),
        "exclusive_revokes": total(("exclusive_revoke",), "count"),
    }
    moved = [e for e in events if e.get("name", "").startswith("migrate_")]
    for e in moved:
        if e["args"]["bytes"] != e["args"]["pages"] * 4096:
            failures.append(f"bytes are not pages of 4 KiB: {e}")
    print(" ".join(f"{k}={v}" for k, v in got.items()))
    for k, v in want.items():
        if str(got.get(k)) != v:
            failures.append(f"{k}: the trace says {got.get(k)}, the statistics {v}")
    for f in failures:
        print(f"FAIL: {path}: {f}")
    return 1 if failures else 0


sys.exit(main())
