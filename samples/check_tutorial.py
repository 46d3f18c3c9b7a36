#!/usr/bin/env python3
"""check_tutorial.py CHAPTER.md SAMPLE.cpp PROGRAM [ARGS...]: the tutorial cannot rot.

The chapter shows its program in the ```cpp block after the line
`<!-- sample: samples/tutorial/NAME.cpp -->`, and what it prints in the
```text block after `<!-- output -->`. This checks that the block is the
sample file, character for character, and that PROGRAM (the sample, built)
prints exactly that output and exits 0. PROGRAM may be a launcher with its
arguments (mpirun -np 3 build/samples/tutorial-ranks)."""
import re
import subprocess
import sys

chapter, sample, program = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(chapter, encoding="utf-8").read()
problems = []

shown = re.search(r"<!-- sample: (\S+) -->\n```cpp\n(.*?)```", text, re.S)
if not shown:
    problems.append(f"{chapter}: no '<!-- sample: ... -->' followed by a ```cpp block")
elif not sample.endswith(shown.group(1).split("/", 1)[-1]) or shown.group(2) != open(sample, encoding="utf-8").read():
    problems.append(f"{chapter}: its cpp block is not {sample}: copy the sample into it")

output = re.search(r"<!-- output -->\n```text\n(.*?)```", text, re.S)
run = subprocess.run(program, capture_output=True, text=True, timeout=120)
if run.returncode != 0:
    problems.append(f"{' '.join(program)} exited {run.returncode}: {run.stderr[-2000:]}")
if not output:
    problems.append(f"{chapter}: no '<!-- output -->' followed by a ```text block")
elif run.stdout != output.group(1):
    problems.append(f"{chapter}: the program printed\n{run.stdout}\nbut the chapter shows\n{output.group(1)}")

if problems:
    sys.exit("\n".join(problems))
print(f"{chapter}: the sample and its output are as shown")
