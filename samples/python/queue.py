"""Python's multiprocessing.Queue, the CSP way, on cspp.

    def f(q):
        q.put([42, None, 'hello'])

    q = Queue()
    p = Process(target=f, args=(q,))
    p.start()
    print(q.get())    # prints "[42, None, 'hello']"
    p.join()

A Queue is a buffered channel: put() is a write that does not wait for a
reader, get() a read. @multiprocess is Process(target=f): the child is a
forked OS process on the same channel; the list crosses pickled.

Prints: [42, None, 'hello']
"""
from cspp.pycsp import *


@multiprocess
def f(q):
    q([42, None, 'hello'])


@process
def parent(q):
    print(q())


q = Channel("queue", buffer=1000)
Parallel(f(-q), parent(+q))
