"""Python's shared Value and Array, the CSP way, on cspp.

    def f(n, a):
        n.value = 3.1415927
        for i in range(len(a)):
            a[i] = -a[i]

    num = Value('d', 0.0)
    arr = Array('i', range(10))
    p = Process(target=f, args=(num, arr))
    p.start(); p.join()
    print(num.value)
    print(arr[:])

CSP shares nothing: an owner process holds the number and the array, and the
others ask it over channels. Reading a `get` channel receives the value,
writing a `set` channel replaces it; the owner offers all four at once. The
owner is a thread of the parent, the child a forked OS process: the channels
work the same between them. The owner ends when every client has retired.

Prints:
  3.1415927
  [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
"""
from cspp.pycsp import *


@process
def owner(num, arr, get_num, set_num, get_arr, set_arr):
    try:
        while True:
            g, value = AltSelect(OutputGuard(get_num, num), InputGuard(set_num),
                                 OutputGuard(get_arr, list(arr)), InputGuard(set_arr))
            if g is set_num:
                num = value
            elif g is set_arr:
                arr = value
    except ChannelRetireException:
        pass


@multiprocess
def f(set_num, get_arr, set_arr):
    set_num(3.1415927)
    a = get_arr()
    for i in range(len(a)):
        a[i] = -a[i]
    set_arr(a)
    retire(set_num, get_arr, set_arr)


@process
def main(get_num, get_arr, set_num, get_arr2, set_arr):
    Parallel(f(set_num, get_arr2, set_arr))
    print(get_num())
    print(get_arr())
    retire(get_num, get_arr)


get_num, set_num, get_arr, set_arr = (Channel(n) for n in ("get num", "set num", "get arr", "set arr"))
Parallel(owner(0.0, range(10), -get_num, +set_num, -get_arr, +set_arr),
         main(+get_num, +get_arr, -set_num, +get_arr, -set_arr))
