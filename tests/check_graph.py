#!/usr/bin/env python3
"""check_graph.py PROGRAM [--across]: run PROGRAM (graph_child) in its modes and
check the Graphviz DOT it leaves: the processes and channels are named, with
their states; a deadlock's cycle is drawn in red; SIGUSR1 draws the running
network; and graphviz's `dot` renders every file to SVG (a file that does not
parse fails here). --across: also the deadlock across OS processes (release
builds only: see tests/meson.build)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

program = sys.argv[1]
across = "--across" in sys.argv[2:]
problems = []


def run(args, graph=None, threads=None):
    env = dict(os.environ)
    env.pop("CSP_GRAPH", None)
    if graph:
        env["CSP_GRAPH"] = graph
    if threads:
        env["CSP_THREADS"] = str(threads)
    done = subprocess.run([program] + args, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        problems.append(f"{' '.join(args)}: exit {done.returncode}: {done.stderr[-800:]}")


def read(path):
    if not os.path.exists(path):
        problems.append(f"no graph at {path}")
        return ""
    with open(path) as f:
        return f.read()


def expect(text, what, where):
    if what not in text:
        problems.append(f"{where}: missing {what!r}")


def render(path, where):
    dot = shutil.which("dot")
    if not dot:
        problems.append("graphviz's dot is not installed (setup.sh installs graphviz)")
        return
    done = subprocess.run([dot, "-Tsvg", path], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or "<svg" not in done.stdout:
        problems.append(f"{where}: dot -Tsvg failed ({done.returncode}): {done.stderr[-800:]}")


with tempfile.TemporaryDirectory() as scratch:
    # A deadlock: the ring, the cycle's edges in red.
    path = os.path.join(scratch, "deadlock.dot")
    run(["deadlock"], path)
    text = read(path)
    for name in ["stage-p", "stage-q", "stage-r", "ring-a", "ring-b", "ring-c", "blocked reading", "unbuffered"]:
        expect(text, name, "deadlock")
    red_edges = [line for line in text.splitlines() if "->" in line and "color=red" in line]
    if len(red_edges) != 6:  # three processes, three channels: six hops
        problems.append(f"deadlock: expected the 6 edges of the cycle in red, got {len(red_edges)}: {red_edges}")
    render(path, "deadlock")

    # A deadlock through a barrier (and across OS processes: the reader in a
    # child): the barrier drawn with its members, the cycle's four edges in
    # red (the wait at it, the member it waits for, the channel's two).
    for mode in ["barrier"] + (["barrier-across"] if across else []):
        path = os.path.join(scratch, mode + ".dot")
        run([mode], path)
        text = read(path)
        for name in ["syncs-first", "reads-first", "gate\\nbarrier, 2 enrolled", "after-gate", "at a barrier",
                     'label="waits to sync"', 'label="enrolled"']:
            expect(text, name, mode)
        red_edges = [line for line in text.splitlines() if "->" in line and "color=red" in line]
        if len(red_edges) != 4:
            problems.append(f"{mode}: expected the 4 edges of the cycle in red, got {len(red_edges)}: {red_edges}")
        render(path, mode)

    # A deadlock across OS processes: one cluster per OS process (the
    # program's own and two children), the ring's channels once each, the
    # cycle in red through all three.
    if across:
        path = os.path.join(scratch, "across.dot")
        run(["across"], path)
        text = read(path)
        for name in ["deadlock across OS processes", "the program's own", "multiprocess 'stage-p'",
                     "multiprocess 'stage-q'", "stage-r", "ring-a", "ring-b", "ring-c", "blocked reading"]:
            expect(text, name, "across")
        clusters = re.findall(r"subgraph cluster_os\d+", text)
        if len(clusters) != 3:
            problems.append(f"across: expected 3 OS processes, got {len(clusters)}")
        for ring in ["ring-a", "ring-b", "ring-c"]:
            if len(re.findall(rf'label="{ring}\\n', text)) != 1:
                problems.append(f"across: channel {ring} is not drawn once")
        red_edges = [line for line in text.splitlines() if "->" in line and "color=red" in line]
        if len(red_edges) != 6:
            problems.append(f"across: expected the 6 edges of the cycle in red, got {len(red_edges)}: {red_edges}")
        render(path, "across")

        # At any time, across OS processes: write_graph asks each child for
        # its part. One worker each (CSP_THREADS=1), so the child that
        # computes without a pause cannot answer and is drawn as such; the
        # others show their processes, and the channel between them is drawn
        # once, with the writer's and the reader's ends.
        path = os.path.join(scratch, "live-across.dot")
        run(["live-across", path], threads=1)
        text = read(path)
        for name in ["csp network", "the program's own", "multiprocess 'remote-sleeper'",
                     "multiprocess 'remote-reader'", "multiprocess 'remote-busy'", "did not answer",
                     "no processes seen", "watcher", "slow-wire", "sleeping, timed or in io", "blocked reading"]:
            expect(text, name, "live-across")
        clusters = re.findall(r"subgraph cluster_os\d+", text)
        if len(clusters) != 4:
            problems.append(f"live-across: expected 4 OS processes, got {len(clusters)}")
        if len(re.findall(r'label="slow-wire\\n', text)) != 1:
            problems.append("live-across: channel slow-wire is not drawn once")
        ids = dict((label, node) for node, label in re.findall(r'(\w+) \[[^\]]*label="([\w-]+)\\n', text))
        # (The children's processes bear their multiprocess's name.)
        for a, b in [(ids.get("remote-sleeper"), ids.get("slow-wire")), (ids.get("slow-wire"), ids.get("remote-reader"))]:
            if not a or not b or not re.search(rf"\b{a} -> {b} \[", text):
                problems.append(f"live-across: no edge {a} -> {b}")
        if "color=red" in text:
            problems.append("live-across: a cycle drawn where there is none")
        render(path, "live-across")

    # At exit: the process left waiting, with its channel.
    path = os.path.join(scratch, "exit.dot")
    run(["exit"], path)
    text = read(path)
    for name in ["csp network", "left-waiting", "left-sleeping", "late-wire", "sleeping, timed or in io",
                 "blocked reading"]:
        expect(text, name, "exit")
    if "finisher-in" in text:
        problems.append("exit: a process that had ended is in the graph")
    if "color=red" in text:
        problems.append("exit: a cycle drawn where there is none")
    render(path, "exit")

    # At any time: write_graph from a process, others running or sleeping.
    path = os.path.join(scratch, "live.dot")
    run(["live", path], threads=1)
    text = read(path)
    for name in ["sleepy-producer", "patient-consumer", "watcher", "slow-wire", "sleeping, timed or in io",
                 "blocked reading", "watcher\\nrunning\"", "poked\\nready to run\""]:
        expect(text, name, "live")
    # The consumer holds the reader end of the channel it waits on; the
    # producer the writer end.
    ids = dict((label, node) for node, label in re.findall(r'(\w+) \[[^\]]*label="([\w-]+)\\n', text))
    for a, b in [(ids.get("sleepy-producer"), ids.get("slow-wire")), (ids.get("slow-wire"), ids.get("patient-consumer"))]:
        if not a or not b or not re.search(rf"\b{a} -> {b} \[", text):
            problems.append(f"live: no edge {a} -> {b}")
    render(path, "live")

    # SIGUSR1, while the network runs: the graph of that moment, written
    # before the program ends (and rewritten at its exit). It is sent again
    # until the reader shows blocked and the writer asleep (on a loaded
    # machine they may not have got there yet); then the flag file lets the
    # program finish.
    path = os.path.join(scratch, "signal.dot")
    flag = os.path.join(scratch, "seen")
    env = dict(os.environ, CSP_GRAPH=path)
    child = subprocess.Popen([program, "signal", flag], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            problems.append("signal: the program did not say it was ready")
        seen = ""
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and child.poll() is None:
            child.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            if os.path.exists(path):
                with open(path) as f:
                    seen = f.read()
                # (The writer wakes every 50 ms to look for the flag: a graph
                # drawn just then shows it running; the next one will not.)
                if seen.endswith("}\n") and "blocked reading" in seen and "sleeping, timed or in io" in seen:
                    break
        running = child.poll() is None
        open(flag, "w").close()
        out, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        problems.append("signal: the program did not end")
        running, seen, err = False, "", ""
    if child.returncode != 0:
        problems.append(f"signal: exit {child.returncode}: {err[-800:]}")
    if not running:
        problems.append("signal: no graph was drawn while the program ran")
    for name in ["csp network", "slow-writer", "signal-reader", "signal-wire", "blocked reading",
                 "sleeping, timed or in io"]:
        expect(seen, name, "signal")
    with open(os.path.join(scratch, "signal-seen.dot"), "w") as f:
        f.write(seen)
    render(os.path.join(scratch, "signal-seen.dot"), "signal")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("graphs ok")
