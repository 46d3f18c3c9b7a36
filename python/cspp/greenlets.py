"""PyCSP's greenlets variant on cspp: change the import line of a program
written for `pycsp.greenlets` to

    from cspp.greenlets import *

Its @process processes are greenlets of the thread that runs Parallel (or
Spawn), taking turns on that thread as PyCSP's did, on csp's channels: a
communication between two of them is a switch of greenlets, with no OS
thread woken. Everything else is cspp's (@multiprocess, the channels,
alternation, C++ processes); green and thread processes mix in one Parallel
and on one channel. A blocking call other than csp's holds every green
process of its thread: wrap it in @io, which runs it on a thread of its own.
Needs greenlet (Debian's python3-greenlet).
"""
from cspp import *  # noqa: F401,F403
from cspp import __all__  # noqa: F401
from cspp import GreenProcess, _cspp, _decorator, _green_io

if not _cspp.have_greenlets:
    raise ImportError("cspp.greenlets needs greenlet (Debian: python3-greenlet) when cspp is built")

__all__ = list(__all__) + ["GreenProcess"]


def process(fn):
    """@process: calling the decorated function makes a GreenProcess."""
    return _decorator(GreenProcess)(fn)


io = _green_io
