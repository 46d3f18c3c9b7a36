#!/usr/bin/env python3
"""check_sim_trace.py PROGRAM: run PROGRAM (sim_trace_child) twice with the
same seed and once with another, each with CSP_TRACE set, and check that the
trace holds the failing run only, and that the same seed gave the same run,
event for event (times included: they are virtual), and another seed another."""
import json
import os
import subprocess
import sys
import tempfile


def events_of(seed, scratch, name, workers):
    path = os.path.join(scratch, name)
    env = dict(os.environ, CSP_TRACE=path, CSP_THREADS=str(workers))
    run = subprocess.run([sys.argv[1], str(seed)], env=env, capture_output=True, text=True, timeout=60)
    if run.returncode != 0:
        sys.exit(f"program failed ({run.returncode}): {run.stderr[-1000:]}")
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    # (The pid differs from run to run, in the events and in the OS
    # process's name; main's own track is the thread's.)
    return [{k: v for k, v in e.items() if k != "pid"} for e in events if e.get("name") != "process_name"]


with tempfile.TemporaryDirectory() as scratch:
    first = events_of(11, scratch, "a.json", 1)
    again = events_of(11, scratch, "b.json", 4)  # (the same run on 4 workers: the first runs it)
    other = events_of(12, scratch, "c.json", 1)

problems = []
starts = [e for e in first if e["ph"] == "B" and e["name"] == "reader"]
if len(starts) != 1:
    problems.append(f"expected the failing run only (one 'reader' start), got {len(starts)}")
if first != again:
    diff = next((i for i, (x, y) in enumerate(zip(first, again)) if x != y), min(len(first), len(again)))
    problems.append(f"the same seed gave another trace: {len(first)} and {len(again)} events, "
                    f"first difference at {diff}: {first[diff:diff + 1]} / {again[diff:diff + 1]}")
if first == other:
    problems.append("another seed gave the same trace")
comms = [e for e in first if e["ph"] == "i"]
if len(comms) < 12:
    problems.append(f"expected the communications in the trace, got {len(comms)} instants")
if problems:
    sys.exit("\n".join(problems))
print(f"ok: {len(first)} events, the same for the same seed")
