#!/usr/bin/env python3
"""check_trace_summary.py TOOL PROGRAM [ARGS...]: run PROGRAM with CSP_TRACE,
draw the trace's summary with TOOL (tools/trace_summary.py), and check the
picture against the trace: well-formed SVG, one row per process (each named),
every OS process a heading, the blocked shares between 0 and 100%, and the
values written and read adding up to the trace's flows."""
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

tool, program = sys.argv[1], sys.argv[2:]
problems = []
with tempfile.TemporaryDirectory() as scratch:
    trace = os.path.join(scratch, "trace.json")
    picture = os.path.join(scratch, "summary.svg")
    env = dict(os.environ, CSP_TRACE=trace)
    done = subprocess.run(program, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"{' '.join(program)}: exit {done.returncode}: {done.stderr[-800:]}")
    done = subprocess.run([sys.executable, tool, trace, picture, "--rows", "1000"], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        sys.exit(f"trace_summary: exit {done.returncode}: {done.stderr[-800:]}")
    with open(trace) as f:
        events = json.load(f)["traceEvents"]
    svg = ET.parse(picture).getroot()
    texts = [el.text or "" for el in svg.iter("{http://www.w3.org/2000/svg}text")]

# The trace's processes: every slice begun at a track's outermost level is
# one process's life (a simulation's tracks are numbered afresh every run).
depth, names, lives = {}, {}, []
for e in events:
    key = (e.get("pid"), e.get("tid"))
    if e["ph"] == "M" and e["name"] == "thread_name":
        names[key] = e["args"]["name"]
    elif e["ph"] == "B":
        if depth.get(key, 0) == 0:
            lives.append((key, e["name"]))
        depth[key] = depth.get(key, 0) + 1
    elif e["ph"] == "E":
        depth[key] = depth.get(key, 0) - 1
flows_out = sum(1 for e in events if e["ph"] == "s")
flows_in = sum(1 for e in events if e["ph"] == "f")
os_names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}

rows = [t for t in texts if re.fullmatch(r"\d+%, \d+, \d+", t)]
if len(rows) != len(lives):
    problems.append(f"{len(rows)} rows for {len(lives)} processes")
for _, name in lives:
    if name[:36] not in texts:
        problems.append(f"no row named {name!r}")
for name in os_names:
    if name not in texts:
        problems.append(f"no heading for OS process {name!r}")
shares = [int(r.split("%")[0]) for r in rows]
if any(s < 0 or s > 100 for s in shares):
    problems.append(f"a blocked share out of range: {shares}")
wrote = sum(int(r.split(", ")[1]) for r in rows)
read = sum(int(r.split(", ")[2]) for r in rows)
if (wrote, read) != (flows_out, flows_in):
    problems.append(f"wrote {wrote} and read {read} in the rows; the trace has {flows_out} and {flows_in} flows")
if flows_out == 0:
    problems.append("the program's trace has no flows: pick one that communicates")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"trace summary ok: {len(rows)} processes, {wrote} values")
