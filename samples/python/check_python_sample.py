#!/usr/bin/env python3
"""Run one Python sample on cspp and check what it prints:
check_python_sample.py PYTHON SAMPLE.py (PYTHONPATH must reach cspp).
Each sample is run under python3 -X dev, and must exit 0 with no warning."""
import os
import subprocess
import sys
import time

RECORDS = ["A New record is added", ""] + [
    line for name, score in [("Computers", 1), ("Histoty", 5), ("Hindi", 9), ("English", 3)]
    for line in ("Name: %s" % name, "Score: %d" % score, "")]

EXPECTED = {
    "queue": ["[42, None, 'hello']"],
    "pipe": ["[42, None, 'hello']"],
    "manager": RECORDS,
    "namespace": ["before Namespace(x=1, y=1)", "after Namespace(x=6, y=10)"],
    "value_array": ["3.1415927", "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"],
}


def main():
    python, sample = sys.argv[1], sys.argv[2]
    name = os.path.splitext(os.path.basename(sample))[0]
    start = time.monotonic()
    run = subprocess.run([python, "-X", "dev", sample], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - start
    lines = run.stdout.splitlines()
    ok = run.returncode == 0 and run.stderr.strip() == ""
    if name == "pycsp_parallel":
        ok = ok and sorted(lines[:2]) == ["P1 exiting", "P2 exiting"] and lines[2:] == ["Terminating"]
        ok = ok and 0.95 <= took < 3.0  # (about 1 s; an interpreter starts too)
    elif name == "mixed_pipeline":
        ok = ok and lines == ["sum of 2*i for i in 0..999, through C++ fibers: 999000"]
    else:
        ok = ok and lines == EXPECTED[name]
    if not ok:
        print("sample %s: exit %d after %.2f s\n--- stdout\n%s--- stderr\n%s"
              % (name, run.returncode, took, run.stdout, run.stderr))
        return 1
    return 0


sys.exit(main())
