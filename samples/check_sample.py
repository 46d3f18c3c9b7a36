#!/usr/bin/env python3
"""Run one sample and check what it prints: check_sample.py NAME PROGRAM.

Each sample promises an output (see the sample's comments); this fails the
test, with the reason and the full output, when the program breaks it.

check_sample.py --readme README.md samples/hello.cpp checks instead that the
README's first C++ example is that sample, word for word."""
import re
import subprocess
import sys
import time


def hello(lines, seconds):
    return lines == ["hello", "world"]


def pipeline(lines, seconds):
    return lines == ["sum of i*i + 1 for i in 1..1000 = 333834500"]


def commstime(lines, seconds):
    # (The time per communication varies: only its form is checked.)
    return (len(lines) == 2 and lines[0] == "commstime: 100000 numbers, each once and in order"
            and re.fullmatch(r"\d+ ns per communication .*", lines[1]) is not None)


def pycsp_parallel(lines, seconds):
    # P1 and P2 finish in either order; Terminating comes after both. The two
    # one-second sleeps overlap, so the run takes about one second, not two.
    in_order = sorted(lines[:2]) == ["P1 exiting", "P2 exiting"] and lines[2:] == ["Terminating"]
    if not 0.95 <= seconds < 1.9:
        print(f"took {seconds:.2f} s; expected about 1 s (the sleeps must overlap)")
        return False
    return in_order


def dining_philosophers(lines, seconds):
    # The meal counts vary from run to run; their number, the total (the
    # butler seats 50000 times) and that every philosopher ate do not.
    if len(lines) != 7:
        print(f"expected 7 lines, got {len(lines)}")
        return False
    counts = []
    for i, line in enumerate(lines[:5]):
        m = re.fullmatch(rf"philosopher {i} ate (\d+) meals", line)
        if not m:
            print(f"line {i + 1} is not 'philosopher {i} ate N meals'")
            return False
        counts.append(int(m.group(1)))
    if not all(n > 0 for n in counts):
        print(f"a philosopher starved: {counts}")
        return False
    return (sum(counts) == 50000 and lines[5] == "50000 meals in all"
            and lines[6] == "no philosopher starved")


def heat(lines, seconds):
    return (lines[:1] == ["1200 cells in 8 blocks, 2000 steps"] and len(lines) == 6
            and all(re.fullmatch(r"cell \d+: \d+\.\d{4}", line) for line in lines[1:4])
            and re.fullmatch(r"total heat 10000\.0000 before and 10000\.0000 after: conserved", lines[4]) is not None
            and lines[5] == "the same as the sequential computation, cell for cell")


def alting_philosophers(lines, seconds):
    return lines == [f"philosopher {i} ate 1000 meals" for i in range(5)] + ["no two neighbours ever ate at once"]


COMMAND = []  # the command being checked (main sets it)


def word_count(lines, seconds):
    # The same count, done here in Python, of the file the sample was given.
    import collections
    words = re.findall(r"[a-z]+", open(COMMAND[-1], encoding="utf-8", errors="replace").read().lower())
    counts = collections.Counter(words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    want = [f"{len(words)} words, {len(counts)} distinct"] + [f"{n} {w}" for w, n in top]
    if lines != want:
        print("expected:\n" + "\n".join(want))
        return False
    return True


def multiplexer(lines, seconds):
    return lines == [
        "consumer 0: 1000 messages from producer 0, in order",
        "consumer 1: 2000 messages from producer 1, in order",
        "consumer 2: 3000 messages from producer 2, in order",
        "6000 messages received, 6000 sent",
    ]


def mpi_farm(lines, seconds):
    # The picture (24 rows of 78 points), then the totals: the same on any
    # number of ranks (8 workers, 24 rows); then the rows each worker did,
    # adding up to 24.
    if len(lines) != 26 or any(len(line) != 78 for line in lines[:24]):
        print(f"expected 24 rows of 78, a total and the shares, got {len(lines)} lines")
        return False
    shares = re.fullmatch(r"rows per worker:((?: \d+){8})", lines[25])
    return (re.fullmatch(r"24 rows by 8 workers on \d+ ranks, 763576 iterations in all", lines[24]) is not None
            and shares is not None and sum(int(n) for n in shares.group(1).split()) == 24)


def mpi_hello_world(lines, seconds):
    # Ten lines from each of five sources, each once, then rank 0's total
    # (the other ranks' lines may come after it: mpirun gathers them).
    hellos = sorted(line.split(" from rank ")[0] for line in lines if line.startswith("Hello world"))
    expected = sorted(f"Hello world ({s}.{i})" for s in range(5) for i in range(10))
    if hellos != expected:
        print(f"expected each of the 50 lines once, got {len(hellos)} lines")
        return False
    return any(re.fullmatch(r"50 lines printed by 5 sinks on \d+ ranks", line) for line in lines)


def argument(default):
    """The sample's first argument (COMMAND: the program, then its arguments)."""
    return int(COMMAND[1]) if len(COMMAND) > 1 else default


def prime_sieve(lines, seconds):
    limit = argument(10000)
    primes = [n for n in range(2, limit + 1) if all(n % d for d in range(2, int(n ** 0.5) + 1))]
    return lines == ["the primes up to 100: " + " ".join(str(p) for p in primes if p <= 100),
                     f"{len(primes)} primes up to {limit}, the last {primes[-1]}, found by a chain of {len(primes)} filters",
                     "the same as the sequential sieve"]


def sorting_pump(lines, seconds):
    n = argument(1000)
    return (len(lines) == 2 and lines[0] == f"{n} values through a pump of {n} cells: ascending, each value once"
            and re.fullmatch(r"smallest \d+, largest \d+", lines[1]) is not None)


def token_ring(lines, seconds):
    return lines == [f"token passed 100000 times round a ring of 503 processes: process {100000 % 503 + 1} received 0",
                     "every process ended"]


def mandelbrot_farm(lines, seconds):
    # 28 rows of 72 characters: the set ('@') in the middle rows, none at the
    # top; then the verdict.
    picture = lines[:28]
    return (len(lines) == 29 and all(len(row) == 72 for row in picture) and "@" in picture[14]
            and "@" not in picture[0]
            and lines[28] == "28 rows of 72 by 4 OS-process workers: the same as computed in one process")


CHECKS = {"prime_sieve": prime_sieve, "sorting_pump": sorting_pump, "token_ring": token_ring,
          "mandelbrot_farm": mandelbrot_farm, "mpi-farm": mpi_farm, "mpi-hello_world": mpi_hello_world, "hello": hello, "pipeline": pipeline, "commstime": commstime, "pycsp_parallel": pycsp_parallel,
          "dining_philosophers": dining_philosophers, "multiplexer": multiplexer, "heat": heat,
          "alting_philosophers": alting_philosophers, "word_count": word_count}

# samples/ipc: the Python multiprocessing tutorial's examples, each printing
# exactly what its Python original prints.
RECORDS = [("Computers", 1), ("Histoty", 5), ("Hindi", 9), ("English", 3)]
IPC = {
    "ipc-queue": ["[42, None, 'hello']"],
    "ipc-pipe": ["[42, None, 'hello']"],
    "ipc-manager": ["A New record is added", ""]
                   + [line for name, score in RECORDS for line in (f"Name: {name}", f"Score: {score}", "")],
    "ipc-namespace": ["before Namespace(x=1, y=1)", "after Namespace(x=6, y=10)"],
    "ipc-value_array": ["3.1415927", "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"],
}
CHECKS.update({name: (lambda lines, seconds, want=want: lines == want) for name, want in IPC.items()})


def readme_shows(readme, sample):
    blocks = re.findall(r"```cpp\n(.*?)```", open(readme).read(), re.S)
    if blocks and blocks[0] == open(sample).read():
        return 0
    print(f"the first cpp block of {readme} is not {sample}: copy the sample into it")
    return 1


def main():
    if sys.argv[1] == "--readme":
        return readme_shows(sys.argv[2], sys.argv[3])
    name, command = sys.argv[1], sys.argv[2:]  # (a program and its arguments: mpirun -np 2 farm)
    start = time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    lines = run.stdout.splitlines()
    COMMAND[:] = command
    ok = run.returncode == 0 and CHECKS[name](lines, seconds)
    if not ok:
        print(f"{name}: unexpected result (exit code {run.returncode}, {seconds:.2f} s)")
        print("--- stdout ---\n" + run.stdout + "--- stderr ---\n" + run.stderr, end="")
        return 1
    print(run.stdout, end="")
    sys.stderr.write(run.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
