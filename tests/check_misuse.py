#!/usr/bin/env python3
"""Misuse that must not compile: each tests/misuse/*.cpp fails to compile,
with the message its first line names ("// expect: ..."). Usage:
check_misuse.py SOURCE_ROOT COMPILER [ARGS...]"""
import pathlib
import subprocess
import sys
import tempfile

root = pathlib.Path(sys.argv[1])
compiler = sys.argv[2:]
failures = 0
for source in sorted((root / "tests" / "misuse").glob("*.cpp")):
    expected = source.read_text().splitlines()[0].removeprefix("// expect:").strip()
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(compiler + ["-std=c++20", "-fsyntax-only", "-I", str(root), str(source)],
                             capture_output=True, text=True, cwd=tmp)
    if run.returncode == 0:
        print(f"FAIL {source.name}: compiled, but should not have")
        failures += 1
    elif expected not in run.stderr:
        print(f"FAIL {source.name}: did not say '{expected}'; the compiler said:\n{run.stderr[-3000:]}")
        failures += 1
    else:
        print(f"ok   {source.name}")
sys.exit(1 if failures else 0)
