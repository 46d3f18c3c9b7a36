#!/usr/bin/env python3
"""check_crash.py PROGRAM [ARGS...]: the program must die of a signal (not exit
normally) and say on stderr that the fiber process 'deep' overflowed its
stack. Under AddressSanitizer, which reports overflows itself, its own
stack-overflow report counts."""
import subprocess
import sys

result = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)
ours = "stack overflow in a fiber process 'deep'" in result.stderr
asan = "AddressSanitizer: stack-overflow" in result.stderr
if result.returncode == 0:
    sys.exit("the overflowing program exited normally")
if not (ours or asan):
    sys.exit(f"no stack overflow report (exit {result.returncode}); stderr was:\n{result.stderr[-2000:]}")
print("overflow reported:", (result.stderr.strip().splitlines() or ["?"])[-1][:200])
