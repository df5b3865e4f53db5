#!/usr/bin/env python3
# Checks a picture of zdevctl plot or zdev-run --plot, for
# tests/test-trace.sh: an SVG document (parsed as XML) holding both plots,
# device memory over time with a line for each device and the fault latency
# histogram with its bars, each with a title and axes.
#
#   svg-check.py FILE.svg [MIN-BARS]
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def main():
    path = sys.argv[1]
    min_bars = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    failures = []
    root = ET.parse(path).getroot()
    if root.tag != NS + "svg":
        print(f"FAIL: {path}: the root is {root.tag}, not svg")
        return 1
    plots = {g.get("id"): g for g in root.iter(NS + "g") if g.get("class") == "plot"}
    for pid in ("device-memory", "fault-latency"):
        g = plots.get(pid)
        if g is None:
            failures.append(f"no plot {pid}")
            continue
        if not [t for t in g.iter(NS + "text") if t.get("class") == "title"]:
            failures.append(f"{pid}: no title")
        if len([ln for ln in g.iter(NS + "line") if ln.get("class") == "axis"]) < 2:
            failures.append(f"{pid}: no axes")
        if not [t for t in g.iter(NS + "text") if t.get("class") == "tick"]:
            failures.append(f"{pid}: no ticks")
    if "device-memory" in plots:
        if not [p for p in plots["device-memory"].iter(NS + "polyline")]:
            failures.append("device-memory: no line")
    if "fault-latency" in plots:
        bars = [r for r in plots["fault-latency"].iter(NS + "rect")
                if r.get("class") == "bar" and float(r.get("height")) > 0]
        if len(bars) < min_bars:
            failures.append(f"fault-latency: {len(bars)} bars, expected at least {min_bars}")
    for f in failures:
        print(f"FAIL: {path}: {f}")
    return 1 if failures else 0


sys.exit(main())
