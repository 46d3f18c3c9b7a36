#!/usr/bin/env python3
"""Python on cspp against Python's own means, for bench/run (./setup.sh bench).

  cspp_bench.py ITERATIONS --bench commstime --impl cspp|cspp-green|queue
      commstime: Prefix(0) -> Delta -> Successor -> Prefix, Delta -> Consumer,
      all four channels unbuffered (cspp: a Python process per thread on csp
      channels; cspp-green: cspp.greenlets, the four processes greenlets of
      the main thread, as PyCSP's greenlets variant runs them; queue: four threading threads on queue.Queue(maxsize=1), the
      nearest Python has to an unbuffered channel). Figure: the consumer's
      timed loop / (4 x cycles), after a warm-up of cycles/10.
  cspp_bench.py ITERATIONS --bench ipc --impl cspp|mp-pipe|mp-queue
      ping-pong of an int between the parent and a child OS process (cspp: a
      @multiprocess over two unbuffered channels; mp-pipe: two one-way
      multiprocessing.Pipe connections; mp-queue: two multiprocessing.Queue).
      Figure: one-way latency = the timed loop / (2 x round trips), after a
      warm-up of a tenth.

Every value is checked on arrival. The whole program is timed too (`total_s`:
from before the channels and processes are made to after the last one ended).
Prints one line: RESULT name=python-<bench> impl=<impl, csp for cspp> workers=1 ns_per_op=...
"""
import argparse
import multiprocessing as mp
import queue
import threading
import time


def cspp_commstime(cycles, green=False):
    if green:
        from cspp.greenlets import Channel, Parallel, process, poison
    else:
        from cspp import Channel, Parallel, process, poison

    a, b, c, d = Channel("a"), Channel("b"), Channel("c"), Channel("d")

    @process
    def prefix(cin, cout):
        cout(0)
        while True:
            cout(cin())

    @process
    def delta(cin, out1, out2):
        while True:
            x = cin()
            out1(x)
            out2(x)

    @process
    def succ(cin, cout):
        while True:
            cout(cin() + 1)

    @process
    def consumer(cin):
        warm = cycles // 10
        for i in range(warm):
            assert cin() == i
        start = time.perf_counter()
        for i in range(warm, warm + cycles):
            assert cin() == i
        took = time.perf_counter() - start
        poison(cin)
        return took

    return Parallel(prefix(+c, -a), delta(+a, -b, -d), succ(+b, -c), consumer(+d))[-1]


def queue_commstime(cycles):
    a, b, c, d = (queue.Queue(maxsize=1) for _ in range(4))

    def prefix():
        a.put(0)
        while True:
            a.put(c.get())

    def delta():
        while True:
            x = a.get()
            b.put(x)
            d.put(x)

    def succ():
        while True:
            c.put(b.get() + 1)

    # (Daemons: the ring runs on until the program exits, as nothing like
    # poison stops it.)
    for f in (prefix, delta, succ):
        threading.Thread(target=f, daemon=True).start()
    warm = cycles // 10
    for i in range(warm):
        assert d.get() == i
    start = time.perf_counter()
    for i in range(warm, warm + cycles):
        assert d.get() == i
    return time.perf_counter() - start


def cspp_ipc(trips):
    from cspp import Channel, Parallel, multiprocess, process, retire

    ping, pong = Channel("ping"), Channel("pong")

    @multiprocess
    def echo(cin, cout):
        for _ in range(trips + trips // 10):
            cout(cin())

    @process
    def driver(cout, cin):
        warm = trips // 10
        for i in range(warm):
            cout(i)
            assert cin() == i
        start = time.perf_counter()
        for i in range(warm, warm + trips):
            cout(i)
            assert cin() == i
        return time.perf_counter() - start

    return Parallel(echo(+ping, -pong), driver(-ping, +pong))[1]


def mp_echo(kind, rx, tx, n):
    for _ in range(n):
        v = rx.recv() if kind == "mp-pipe" else rx.get()
        tx.send(v) if kind == "mp-pipe" else tx.put(v)


def mp_ipc(kind, trips):
    n = trips + trips // 10
    if kind == "mp-pipe":
        (ping_rx, ping_tx), (pong_rx, pong_tx) = mp.Pipe(duplex=False), mp.Pipe(duplex=False)
        send, recv = ping_tx.send, pong_rx.recv
        child = mp.Process(target=mp_echo, args=(kind, ping_rx, pong_tx, n))
    else:
        ping, pong = mp.Queue(), mp.Queue()
        send, recv = ping.put, pong.get
        child = mp.Process(target=mp_echo, args=(kind, ping, pong, n))
    child.start()
    warm = trips // 10
    for i in range(warm):
        send(i)
        assert recv() == i
    start = time.perf_counter()
    for i in range(warm, warm + trips):
        send(i)
        assert recv() == i
    took = time.perf_counter() - start
    child.join()
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iterations", type=int)
    ap.add_argument("--bench", choices=("commstime", "ipc"), required=True)
    ap.add_argument("--impl", required=True)
    a = ap.parse_args()
    total_start = time.perf_counter()
    if a.bench == "commstime":
        took = {"cspp": cspp_commstime, "queue": queue_commstime,
                "cspp-green": lambda n: cspp_commstime(n, green=True)}[a.impl](a.iterations)
        ns = took * 1e9 / (4 * a.iterations)
    else:
        took = cspp_ipc(a.iterations) if a.impl == "cspp" else mp_ipc(a.impl, a.iterations)
        ns = took * 1e9 / (2 * a.iterations)
    total = time.perf_counter() - total_start
    impl = {"cspp": "csp", "cspp-green": "csp-green"}.get(a.impl, a.impl)  # (the table's csp rows)
    print(f"RESULT name=python-{a.bench} impl={impl} workers=1 ns_per_op={ns:.1f} "
          f"iterations={a.iterations} total_s={total:.3f}", flush=True)


if __name__ == "__main__":
    main()
