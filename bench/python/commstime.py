"""commstime in Python: cspp (a thread per process) against queue.Queue
between threads, the same four-process ring (prefix, delta, successor,
consumer), per communication. Usage: commstime.py [N] (default 20000)."""
import queue
import sys
import threading
import time

from cspp import Channel, Parallel, process, poison, ChannelPoisonException


def cspp_commstime(n):
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
    def consumer(cin, n):
        cin()
        start = time.perf_counter()
        for _ in range(n):
            cin()
        took = time.perf_counter() - start
        poison(cin)
        return took

    took = Parallel(prefix(+c, -a), delta(+a, -b, -d), succ(+b, -c), consumer(+d, n))[-1]
    return took / (4 * n)


def queue_commstime(n):
    a, b, c, d = (queue.Queue(maxsize=1) for _ in range(4))
    stop = object()

    def prefix():
        b_out = a
        b_out.put(0)
        while True:
            x = c.get()
            if x is stop:
                a.put(stop)
                return
            a.put(x)

    def delta():
        while True:
            x = a.get()
            b.put(x)
            d.put(x)
            if x is stop:
                return

    def succ():
        while True:
            x = b.get()
            if x is stop:
                c.put(stop)
                return
            c.put(x + 1)

    result = []

    def consumer():
        d.get()
        start = time.perf_counter()
        for _ in range(n):
            d.get()
        result.append(time.perf_counter() - start)
        # drain: let the ring stop
        c.put(stop) if False else None

    threads = [threading.Thread(target=f, daemon=True) for f in (prefix, delta, succ)]
    for t in threads:
        t.start()
    consumer()
    return result[0] / (4 * n)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    q = queue_commstime(n)
    print("queue.Queue threads: %.2f us per communication" % (q * 1e6), flush=True)
    c = cspp_commstime(n)
    print("cspp threads:        %.2f us per communication" % (c * 1e6))
    print("ratio queue/cspp: %.2f" % (q / c))
