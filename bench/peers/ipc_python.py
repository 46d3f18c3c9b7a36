#!/usr/bin/env python3
"""ipc in Python 3 multiprocessing: the peer of bench/ipc.cpp, same two measurements.

    parent --ping--> child
    parent <--pong-- child        (child: a multiprocessing.Process, default start method)

ping and pong are either two one-way multiprocessing.Pipe(duplex=False)
connections (`--kind pipe`, impl=python-pipe) or two multiprocessing.Queue
objects (`--kind queue`, impl=python-queue; each put goes through the queue's
feeder thread and a pipe).

(a) latency: the parent sends an int i, the child receives it and sends it
    back; one round trip per iteration. Figure: one-way latency = the timed
    loop / (2 * round trips).
(b) bandwidth: the same ping-pong with a 64 KiB bytes object both ways.
    Figure: bytes moved one way per second, counting each direction's
    message (2 * 64 KiB per round trip), in MB/s (10^6 B).
Each part runs a warm-up of a tenth of its count first. The parent checks that
every message comes back as sent.

Usage: ipc_python.py [iterations] | --iterations N
                     [--bandwidth-iterations M | --bandwidth-divisor D] [--kind pipe|queue]
  iterations: latency round trips (default 30000). Bandwidth round trips: M,
  else iterations / D (D default 6), as in bench/ipc.cpp.
Prints one line:
  RESULT name=ipc impl=python-pipe|python-queue workers=1 ns_per_op=<one-way ns> ...
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time

MESSAGE_BYTES = 64 * 1024
DEFAULT_ITERATIONS = 30_000
DEFAULT_BANDWIDTH_DIVISOR = 6


class PipeEnds:
    """One direction over a Pipe(duplex=False): the reading and the writing connection."""

    def __init__(self) -> None:
        self.r, self.w = mp.Pipe(duplex=False)

    def sender(self):
        return self.w.send

    def receiver(self):
        return self.r.recv


class QueueEnds:
    """One direction over a Queue."""

    def __init__(self) -> None:
        self.q = mp.Queue()

    def sender(self):
        return self.q.put

    def receiver(self):
        return self.q.get


def child(ping, pong, n_small: int, n_big: int) -> None:
    recv, send = ping.receiver(), pong.sender()
    for _ in range(n_small):
        send(recv())
    for _ in range(n_big):
        send(recv())


def count(s: str) -> int:
    n = int(s)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("count", nargs="?", type=count, help="latency round trips")
    ap.add_argument("--iterations", type=count, help="latency round trips (as the positional)")
    ap.add_argument("--bandwidth-iterations", type=count, help="64 KiB round trips")
    ap.add_argument("--bandwidth-divisor", type=count, default=DEFAULT_BANDWIDTH_DIVISOR,
                    help="bandwidth round trips = iterations / this (default %(default)s)")
    ap.add_argument("--kind", choices=("pipe", "queue"), default="pipe")
    a = ap.parse_args()

    iterations = a.iterations or a.count or DEFAULT_ITERATIONS
    bw_iterations = a.bandwidth_iterations or max(1, iterations // a.bandwidth_divisor)
    lat_warmup, bw_warmup = iterations // 10 + 1, bw_iterations // 10 + 1

    ends = PipeEnds if a.kind == "pipe" else QueueEnds
    ping, pong = ends(), ends()
    p = mp.Process(target=child, args=(ping, pong, lat_warmup + iterations, bw_warmup + bw_iterations))
    p.start()
    send, recv = ping.sender(), pong.receiver()
    ok = True

    # (a) latency
    for i in range(lat_warmup):
        send(i)
        ok &= recv() == i
    t0 = time.perf_counter()
    for i in range(iterations):
        send(i)
        ok &= recv() == i
    lat_seconds = time.perf_counter() - t0

    # (b) bandwidth: a fresh bytes object per message (bytes are immutable),
    # stamped with i at both ends so a mixed-up message would show.
    body = b"x" * (MESSAGE_BYTES - 16)
    for i in range(bw_warmup):
        stamp = i.to_bytes(8, "little")
        msg = stamp + body + stamp
        send(msg)
        ok &= recv() == msg
    t0 = time.perf_counter()
    for i in range(bw_iterations):
        stamp = i.to_bytes(8, "little")
        msg = stamp + body + stamp
        send(msg)
        back = recv()
        ok &= back[:8] == stamp and back[-8:] == stamp and len(back) == MESSAGE_BYTES
    bw_seconds = time.perf_counter() - t0

    p.join()
    if p.exitcode != 0:
        print(f"ipc_python: child exited with {p.exitcode}", file=sys.stderr)
        return 1
    if not ok:
        print("ipc_python: a message came back different", file=sys.stderr)
        return 1

    one_way_ns = lat_seconds * 1e9 / (2 * iterations)
    mb_per_s = 2 * MESSAGE_BYTES * bw_iterations / bw_seconds / 1e6
    print(f"RESULT name=ipc impl=python-{a.kind} workers=1 ns_per_op={one_way_ns:.2f} "
          f"latency_us={one_way_ns / 1e3:.3f} mb_per_s={mb_per_s:.1f} "
          f"round_trips={iterations} bw_round_trips={bw_iterations} "
          f"latency_seconds={lat_seconds:.4f} bw_seconds={bw_seconds:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
