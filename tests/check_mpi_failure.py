#!/usr/bin/env python3
"""check_mpi_failure.py MPIRUN PROGRAM TEXT...: run PROGRAM on 2 ranks; the
job must fail within 60 s (not hang, not exit 0), and its output must hold
every TEXT (what says why: the dead rank, the channels made out of order)."""
import subprocess
import sys
import time

start = time.monotonic()
try:
    result = subprocess.run([sys.argv[1], "-np", "2", sys.argv[2]], capture_output=True, text=True, timeout=60)
except subprocess.TimeoutExpired:
    sys.exit("the job hung (still running after 60 s)")
elapsed = time.monotonic() - start
output = result.stdout + result.stderr
if result.returncode == 0:
    sys.exit(f"the job exited 0:\n{output[-2000:]}")
missing = [text for text in sys.argv[3:] if text not in output]
if missing:
    sys.exit(f"the job's output does not say {missing}:\n{output[-2000:]}")
print(f"ended in {elapsed:.1f} s with status {result.returncode}:",
      next((line for line in output.splitlines() if sys.argv[3] in line), "").strip()[:300])
