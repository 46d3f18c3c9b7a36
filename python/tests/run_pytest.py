"""Run pytest over the files given, with a per-test timeout; no test
collected (pytest's exit code 5) is a failure, not a pass."""
import sys

import pytest

code = pytest.main(["-q", "-p", "no:cacheprovider", "--timeout=60", "-W", "error::pytest.PytestUnraisableExceptionWarning"] + sys.argv[1:])
if code == 5:
    print("run_pytest.py: no test was collected", file=sys.stderr)
    code = 1
sys.exit(int(code))
