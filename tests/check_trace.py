#!/usr/bin/env python3
"""check_trace.py PROGRAM: run PROGRAM (samples/hello) with CSP_TRACE set and
check the file it leaves: Chrome trace event JSON with a named track per
process, begin/end events, and the reads and writes on channel 'greetings'."""
import json
import os
import subprocess
import sys
import tempfile

with tempfile.TemporaryDirectory() as scratch:
    path = os.path.join(scratch, "trace.json")
    env = dict(os.environ, CSP_TRACE=path)
    run = subprocess.run([sys.argv[1]], env=env, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        sys.exit(f"program failed ({run.returncode}): {run.stderr[-1000:]}")
    if not os.path.exists(path):
        sys.exit("CSP_TRACE was set but no trace file was written")
    with open(path) as f:
        events = json.load(f)["traceEvents"]

names = {e["args"]["name"] for e in events if e["ph"] == "M"}
begins = [e for e in events if e["ph"] == "B"]
ends = [e for e in events if e["ph"] == "E"]
comms = [e for e in events if e["ph"] == "i" and e.get("args", {}).get("channel") == "greetings"]
writes = [e for e in comms if e["name"].startswith("write")]
reads = [e for e in comms if e["name"].startswith("read")]
retires = [e for e in comms if e["name"].startswith("retire")]

problems = []
if "main" not in names:
    problems.append(f"no track named 'main' (tracks: {sorted(names)})")
if len([n for n in names if n.startswith("process@hello.cpp")]) != 2:
    problems.append(f"expected the two hello processes as tracks, got {sorted(names)}")
if len(begins) < 3 or len(ends) < 2:
    problems.append(f"expected process begin/end events, got {len(begins)} B and {len(ends)} E")
if len(writes) != 2 or len(reads) != 2:
    problems.append(f"expected 2 writes and 2 reads on 'greetings', got {len(writes)} and {len(reads)}")
if not retires:
    problems.append("expected the retire of 'greetings' in the trace")
if any(not isinstance(e.get("ts"), int) for e in begins + ends + comms):
    problems.append("events without an integer timestamp")
if problems:
    sys.exit("\n".join(problems))
print(f"trace: {len(events)} events, tracks {sorted(names)}")
