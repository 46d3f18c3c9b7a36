"""Python's multiprocessing.Pipe, the CSP way, on cspp.

    def f(conn):
        conn.send([42, None, 'hello'])
        conn.close()

    parent_conn, child_conn = Pipe()
    p = Process(target=f, args=(child_conn,))
    p.start()
    print(parent_conn.recv())   # prints "[42, None, 'hello']"
    p.join()

A Pipe is duplex; a channel goes one way, so a Pipe is two channels, and a
Connection holds the writing end of one and the reading end of the other.
send() is a write, recv() a read, close() retires both ends.

Prints: [42, None, 'hello']
"""
from cspp.pycsp import *


class Connection:
    def __init__(self, out, into):
        self.out, self.into = out, into

    def send(self, value):
        self.out(value)

    def recv(self):
        return self.into()

    def close(self):
        retire(self.out, self.into)


def Pipe():
    there, back = Channel("pipe there"), Channel("pipe back")
    return Connection(-there, +back), Connection(-back, +there)


@multiprocess
def f(out, into):
    conn = Connection(out, into)
    conn.send([42, None, 'hello'])
    conn.close()


@process
def parent(conn):
    print(conn.recv())


parent_conn, child_conn = Pipe()
Parallel(f(child_conn.out, child_conn.into), parent(parent_conn))
