"""A Manager's Namespace, the CSP way, on cspp.

    def Mng_NaSp(using_ns):
        using_ns.x += 5
        using_ns.y *= 10

    manager = multiprocessing.Manager()
    using_ns = manager.Namespace()
    using_ns.x = 1
    using_ns.y = 1
    print('before', using_ns)
    p = multiprocessing.Process(target=Mng_NaSp, args=(using_ns,))
    p.start(); p.join()
    print('after', using_ns)

The Namespace lives in a server process (a forked OS process, as a Manager's
is) that owns a dict. Whoever reads `get` receives the current value; whoever
writes `set` replaces it. The server offers both at once, with an output
guard and an input guard, and ends when every client's ends have retired.

Prints:
  before Namespace(x=1, y=1)
  after Namespace(x=6, y=10)
"""
from cspp.pycsp import *


def show(ns):
    return "Namespace(%s)" % ", ".join("%s=%r" % kv for kv in sorted(ns.items()))


@multiprocess
def server(ns, get, put):
    try:
        while True:
            g, value = AltSelect(OutputGuard(get, dict(ns)), InputGuard(put))
            if g is put:
                ns = value
    except ChannelRetireException:
        pass


@multiprocess
def Mng_NaSp(get, put):
    ns = get()
    ns["x"] += 5
    ns["y"] *= 10
    put(ns)
    retire(get, put)


@process
def main(get, put, get2, put2):
    put({"x": 1, "y": 1})
    print('before', show(get()))
    Parallel(Mng_NaSp(get2, put2))
    print('after', show(get()))
    retire(get, put)


get, put = Channel("get"), Channel("set")
Parallel(server({}, -get, +put), main(+get, -put, +get, -put))
