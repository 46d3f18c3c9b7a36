"""The first example of the PyCSP tutorial, on cspp (only the import changed).

Prints "P1 exiting" and "P2 exiting" (in either order), then "Terminating",
in about one second: the two sleeps overlap. (Each line is written whole:
print's text and its newline are two writes, which two processes on threads
of their own could interleave.)
"""
import time

from cspp.pycsp import *


@process
def P1():
    time.sleep(1)
    print('P1 exiting\n', end='')


@process
def P2():
    time.sleep(1)
    print('P2 exiting\n', end='')


Parallel(P1(), P2())
print('Terminating')
