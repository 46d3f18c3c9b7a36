#!/usr/bin/env python3
"""check_trace.py [--fibers] HELLO TRACE_CHILD: run each with CSP_TRACE set and check the
file it leaves, as a viewer (Perfetto, chrome://tracing) would read it.
check_trace.py --ranks N MPIRUN HELLO_WORLD: the same for samples/mpi/hello_world.cpp on
N ranks: one file, written by rank 0, with a group per rank.

- well-formed JSON; every event of a known phase, with a pid, and a ts where
  the phase needs one;

- every OS process named (process_name), every track with slices named
  (thread_name);
- per track, begin/end slices nest, and none ends before it began;
- every flow start has exactly one end, no earlier, and every end a start;
- HELLO: its two processes, 2 values on 'greetings' (2 flows, the reader
  blocked on it), its retire;
- TRACE_CHILD (tests/trace_child.cpp): flows counted per channel and how
  each ended (read, overwritten, discarded), slices of each kind of wait,
  the buffer counter within the capacity, instants for retire, poison and
  the exception with its message, and three OS processes (the child and the
  grandchild named after their multiprocess) in the one file, with flows
  from one to another (not with --fibers: sanitizer builds run TRACE_CHILD
  without its OS processes).
"""
import collections
import json
import os
import subprocess
import sys
import tempfile

PHASES = {"M", "B", "E", "i", "s", "f", "C"}


FIBERS = "--fibers" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--fibers"]
RANKS = int(ARGS[1]) if ARGS and ARGS[0] == "--ranks" else 0


def run(program, scratch, args=(), launcher=()):
    path = os.path.join(scratch, os.path.basename(program) + ".json")
    env = dict(os.environ, CSP_TRACE=path)
    done = subprocess.run([*launcher, program, *args], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"{program} failed ({done.returncode}): {done.stderr[-2000:]}")
    if not os.path.exists(path):
        sys.exit(f"{program}: CSP_TRACE was set but no trace file was written")
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    leftover = [n for n in os.listdir(scratch) if n.endswith(".part") or n.endswith(".tmp")]
    if leftover:
        sys.exit(f"{program}: the children's parts were left beside the trace: {leftover}")
    return events


def well_formed(events, problems):
    """The checks every trace must pass; returns the flows by id."""
    process_names = {}
    thread_names = {}
    for e in events:
        if e.get("ph") not in PHASES or not isinstance(e.get("pid"), int):
            problems.append(f"malformed event {e}")
            continue
        if e["ph"] == "M":
            if e["name"] == "process_name":
                process_names[e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                thread_names[(e["pid"], e["tid"])] = e["args"]["name"]
            continue
        if not isinstance(e.get("ts"), (int, float)):
            problems.append(f"event without a time {e}")
    pids = {e["pid"] for e in events if e.get("ph") != "M"}
    for pid in sorted(pids - set(process_names)):
        problems.append(f"OS process {pid} has events but no process_name")

    stacks = collections.defaultdict(list)
    for e in events:
        key = (e.get("pid"), e.get("tid"))
        if e.get("ph") == "B":
            if key not in thread_names:
                problems.append(f"track {key} has slices but no thread_name")
                thread_names[key] = "?"
            stacks[key].append(e)
        elif e.get("ph") == "E":
            if not stacks[key]:
                problems.append(f"track {key}: an end with no begin at {e['ts']}")
                continue
            begun = stacks[key].pop()
            if e["ts"] < begun["ts"]:
                problems.append(f"track {key}: '{begun['name']}' ends at {e['ts']}, before it began ({begun['ts']})")
    # (Left open: only the life of a thread still running at exit, e.g. main's.)
    for key, stack in stacks.items():
        name = thread_names.get(key, "")
        thread_life = len(stack) == 1 and name.startswith(("main", "thread")) and stack[0]["name"] == name
        if stack and not thread_life:
            problems.append(f"track {key} ({name}): slices never end: {[b['name'] for b in stack]}")

    flows = collections.defaultdict(dict)
    for e in events:
        if e.get("ph") in ("s", "f"):
            if e["ph"] in flows[e["id"]]:
                problems.append(f"flow {e['id']} has two '{e['ph']}' events")
            flows[e["id"]][e["ph"]] = e
    for fid, ends in flows.items():
        if "s" not in ends or "f" not in ends:
            problems.append(f"flow {fid} on '{next(iter(ends.values()))['name']}' is not paired: {sorted(ends)}")
        elif ends["f"]["ts"] < ends["s"]["ts"]:
            problems.append(f"flow {fid} ends before it starts")
        elif ends["s"]["name"] != ends["f"]["name"]:
            problems.append(f"flow {fid} starts on '{ends['s']['name']}' and ends on '{ends['f']['name']}'")
    return flows, process_names, thread_names


def ended_how(flows, channel):
    how = collections.Counter()
    for ends in flows.values():
        if "f" in ends and ends["f"]["name"] == channel:
            how[ends["f"]["args"]["end"]] += 1
    return how


def blocked(events, prefix, on=None):
    return [e for e in events if e.get("ph") == "B" and e["name"].startswith(prefix)
            and (on is None or e.get("args", {}).get("on") == on)]


def instants(events, name, on=None, key="on"):
    return [e for e in events if e.get("ph") == "i" and e["name"] == name
            and (on is None or e.get("args", {}).get(key) == on)]


def check_hello(events, problems):
    flows, _, threads = well_formed(events, problems)
    names = set(threads.values())
    if "main" not in names:
        problems.append(f"hello: no track named 'main' (tracks: {sorted(names)})")
    if len([n for n in names if n.startswith("process@hello.cpp")]) != 2:
        problems.append(f"hello: expected the two hello processes as tracks, got {sorted(names)}")
    if ended_how(flows, "greetings") != {"read": 2}:
        problems.append(f"hello: expected 2 values read on 'greetings', got {ended_how(flows, 'greetings')}")
    if not blocked(events, "blocked reading from channel", "greetings"):
        problems.append("hello: its reader never shows blocked on 'greetings'")
    if not instants(events, "retire", "greetings"):
        problems.append("hello: expected the retire of 'greetings'")


def check_child(events, problems):
    flows, processes, threads = well_formed(events, problems)
    expected = {"numbers": {"read": 50}, "fifo": {"read": 20}, "latest": {"read": 2, "overwritten": 8},
                "doomed": {"discarded": 3}, "left": {"read": 5}, "right": {"read": 5}}
    if not FIBERS:
        expected.update({"to-child": {"read": 5}, "from-child": {"read": 1}, "from-grandchild": {"read": 2}})
    for channel, how in expected.items():
        if ended_how(flows, channel) != how:
            problems.append(f"'{channel}': expected flows ending {how}, got {dict(ended_how(flows, channel))}")

    waits = [("blocked reading from channel", "numbers"), ("blocked writing to channel", "fifo"),
             ("blocked in a choice over channels 'left', 'right'", None), ("waiting at barrier", "phase"),
             ("sleeping", None), ("waiting for the processes it runs to end", None)]
    for prefix, on in waits:
        if not blocked(events, prefix, on):
            problems.append(f"no slice '{prefix}'" + (f" on '{on}'" if on else ""))

    counter = [e["args"]["values"] for e in events if e.get("ph") == "C" and e["name"] == "buffer 'fifo'"]
    if not counter or max(counter) > 3 or min(counter) < 0:
        problems.append(f"buffer 'fifo': expected a counter within 0..3, got {sorted(set(counter))}")
    if counter and max(counter) != 3:
        problems.append(f"buffer 'fifo': its slow reader should have let it fill (3), got at most {max(counter)}")

    for name, on in [("retire", "numbers"), ("poison", "doomed"), ("sync", "phase")]:
        if not instants(events, name, on):
            problems.append(f"no '{name}' instant on '{on}'")
    boom = instants(events, "exception", "boom in the trace test", key="message")
    if len(boom) != 1 or threads.get((boom[0]["pid"], boom[0]["tid"])) != "boom":
        problems.append(f"expected the exception on the track of process 'boom', got {boom}")

    # Three OS processes: this one, the child, the grandchild, each named,
    # with tracks and flows between them.
    if FIBERS:
        return
    children = {pid: name for pid, name in processes.items() if name.startswith("multiprocess '")}
    if sorted(n.split(" (pid")[0] for n in children.values()) != ["multiprocess 'child'", "multiprocess 'grandchild'"]:
        problems.append(f"expected the child and the grandchild as OS processes, got {processes}")
    for pid in children:
        if not any(e.get("ph") == "B" and e["pid"] == pid for e in events):
            problems.append(f"OS process {processes[pid]} has no tracks with slices")
    across = [ends for ends in flows.values() if "s" in ends and "f" in ends and ends["s"]["pid"] != ends["f"]["pid"]]
    across_channels = {ends["s"]["name"] for ends in across}
    if not {"to-child", "from-child", "from-grandchild"} <= across_channels:
        problems.append(f"expected flows from one OS process to another on the three channels, got {across_channels}")


def check_ranks(events, problems):
    """hello_world on RANKS ranks: 5 sources and 5 sinks spread over them, 50 values on
    'hello'."""
    flows, process_names, threads = well_formed(events, problems)
    ranks = sorted(n for n in process_names.values() if n.startswith("rank "))
    if [n.split()[1] for n in ranks] != [str(r) for r in range(RANKS)]:
        problems.append(f"ranks: expected a group for each of ranks 0..{RANKS - 1}, got {sorted(process_names.values())}")
    names = collections.Counter(n for n in threads.values() if n in ("source", "sink"))
    if names != {"source": 5, "sink": 5}:
        problems.append(f"ranks: expected the 5 sources and 5 sinks as tracks, got {dict(names)}")
    pids_with_sinks = {pid for (pid, _), n in threads.items() if n == "sink"}
    if len(pids_with_sinks) != min(RANKS, 5):
        problems.append(f"ranks: sinks should be on {min(RANKS, 5)} ranks' groups, are on {len(pids_with_sinks)}")
    if ended_how(flows, "hello") != {"read": 50}:
        problems.append(f"ranks: expected 50 values read on 'hello', got {ended_how(flows, 'hello')}")
    # The clocks line up: every rank's events lie within rank 0's run.
    first = {}
    for e in events:
        if e.get("ph") != "M":
            first.setdefault(e["pid"], e["ts"])
    if first and min(first.values()) < -1000:
        problems.append(f"ranks: events before rank 0's trace began: {first}")


problems = []
with tempfile.TemporaryDirectory() as scratch:
    if RANKS:
        mpirun, program = ARGS[2], ARGS[3]
        ranks = run(program, scratch, launcher=(mpirun, "-np", str(RANKS)))
        check_ranks(ranks, problems)
    else:
        hello = run(ARGS[0], scratch)
        child = run(ARGS[1], scratch, ["fibers"] if FIBERS else [])
        check_hello(hello, problems)
        check_child(child, problems)
if problems:
    sys.exit("\n".join(problems[:40]))
if RANKS:
    print(f"trace: hello_world on {RANKS} ranks, {len(ranks)} events in one file")
else:
    print(f"trace: hello {len(hello)} events; trace_child {len(child)} events, "
          f"{len({e['pid'] for e in child})} OS processes")
