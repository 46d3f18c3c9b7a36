#!/usr/bin/env python3
"""check_rank_death.py MPIRUN PROGRAM: run PROGRAM on 2 ranks, one of which
dies; the job must end within 60 s, fail, and name the dead rank."""
import subprocess
import sys
import time

start = time.monotonic()
try:
    result = subprocess.run([sys.argv[1], "-np", "2", sys.argv[2]], capture_output=True, text=True, timeout=60)
except subprocess.TimeoutExpired:
    sys.exit("the job hung after a rank died (still running after 60 s)")
elapsed = time.monotonic() - start
output = result.stdout + result.stderr
if result.returncode == 0:
    sys.exit(f"the job exited 0 after a rank died:\n{output[-2000:]}")
if "rank 1" not in output:
    sys.exit(f"the job's output does not name the dead rank:\n{output[-2000:]}")
print(f"ended in {elapsed:.1f} s with status {result.returncode}:",
      next((line for line in output.splitlines() if "rank 1" in line), "").strip()[:200])
