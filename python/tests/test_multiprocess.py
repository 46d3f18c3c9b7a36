"""@multiprocess: a process in a forked OS process on the same channels, with
the same rules: every value once, retire and poison both ways, results and
exceptions back to Parallel, a killed child poisons what it held."""
import os
import signal
import subprocess
import sys
import time

import pytest

from cspp import (Channel, ChannelPoisonException, ChannelRetireException, OSProcessError,
                  Parallel, UsageError, multiprocess, poison, process, retire)

from network import collect, produce


@multiprocess
def square(cin, cout):
    while True:
        x = cin()
        cout((x * x, os.getpid()))


@pytest.mark.parametrize("buffer", [0, 4])
def test_every_value_once_through_forked_workers(buffer):
    c, d = Channel("c"), Channel("d", buffer=buffer)
    got = Parallel(produce(-c, range(200)), 3 * square(+c, -d), collect(+d))[-1]
    assert sorted(v for v, _ in got) == [i * i for i in range(200)]
    pids = {p for _, p in got}
    assert os.getpid() not in pids and 1 <= len(pids) <= 3


def test_results_and_objects_cross_pickled():
    @multiprocess
    def child(cin, cout):
        x = cin()
        cout({"seen": x, "pid": os.getpid()})
        return ("done", x["n"])

    c, d = Channel(), Channel()

    @process
    def parent(cout, cin):
        cout({"n": 7, "list": [1, 2]})
        return cin()

    results = Parallel(child(+c, -d), parent(-c, +d))
    assert results[0] == ("done", 7)
    assert results[1]["seen"] == {"n": 7, "list": [1, 2]}
    assert results[1]["pid"] != os.getpid()


def test_an_exception_in_the_child_is_reraised_with_its_type():
    @multiprocess
    def failing():
        raise KeyError("missing")

    with pytest.raises(KeyError) as info:
        Parallel(failing())
    assert "failing" in "".join(getattr(info.value, "__notes__", []))


def test_poison_both_ways():
    c, d = Channel("to-child"), Channel("from-child")

    @multiprocess
    def child_poisons(cin):
        cin()
        poison(cin)

    @process
    def parent_writes(cout):
        cout(1)
        with pytest.raises(ChannelPoisonException):
            while True:
                cout(2)
        return "parent saw poison"

    assert Parallel(child_poisons(+c), parent_writes(-c))[1] == "parent saw poison"

    @multiprocess
    def child_blocked(cout):
        try:
            while True:
                cout(1)
        except ChannelPoisonException:
            return "child saw poison"

    @process
    def parent_poisons(cin):
        cin()
        poison(cin)

    assert Parallel(child_blocked(-d), parent_poisons(+d))[0] == "child saw poison"


def test_a_killed_child_poisons_its_channels():
    c = Channel("held")

    @multiprocess
    def victim(cin):
        os.kill(os.getpid(), signal.SIGKILL)

    @process
    def waiter(cout):
        try:
            cout(1)
        except ChannelPoisonException:
            return "poisoned"

    with pytest.raises(OSProcessError):
        Parallel(victim(+c), waiter(-c))


def test_an_end_handed_to_a_child_is_the_childs():
    c = Channel(buffer=1)
    end = -c

    @multiprocess
    def child(cout):
        cout(1)

    Parallel(child(end))
    with pytest.raises(UsageError):
        end(2)
    assert (+c)() == 1


def test_a_value_that_cannot_be_pickled_fails_its_writer():
    c = Channel("unpicklable")

    @multiprocess
    def child(cin):
        try:
            return cin()
        except ChannelRetireException:
            return "retired"

    @process
    def writer(cout):
        try:
            cout(lambda: 1)  # lambdas do not pickle
        except Exception as e:
            retire(cout)
            return "failed: " + str(e)
        return "sent"

    # The child is running (the channel crosses): the write fails, the child
    # reads nothing.
    ready = Channel("ready")

    @multiprocess
    def child_ready(go, cin):
        go(True)
        try:
            return cin()
        except ChannelRetireException:
            return "retired"

    @process
    def writer_after(go, cout):
        go()
        try:
            cout(lambda: 1)
        except Exception as e:
            retire(cout)
            return "failed: " + str(e)
        return "sent"

    results = Parallel(child_ready(-ready, +c), writer_after(+ready, -c))
    assert results[1].startswith("failed: ") and results[0] == "retired", results
    # Racing the fork: the write fails, or (a narrow window: the value packed
    # under the channel's lock) the child is poisoned; never a value, never a hang.
    for _ in range(5):
        c = Channel("unpicklable")
        results = Parallel(child(+c), writer(-c))
        assert results in (["retired", results[1]], [None, "sent"]), results
        assert results[1] == "sent" or results[1].startswith("failed: ")


def test_output_is_not_duplicated(tmp_path):
    script = tmp_path / "out.py"
    script.write_text(
        "import sys\n"
        "from cspp import *\n"
        "sys.stdout.write('parent before ')\n"
        "@multiprocess\n"
        "def child():\n"
        "    print('child')\n"
        "Parallel(child(), child())\n"
        "print('parent after')\n")
    out = subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("parent before") == 1
    assert out.stdout.count("child") == 2
    assert out.stdout.count("parent after") == 1


def test_a_parallel_inside_a_child():
    @process
    def double(x):
        return 2 * x

    @multiprocess
    def child():
        return Parallel(double(1), double(2))

    assert Parallel(child())[0] == [2, 4]


def test_a_child_collecting_inherited_garbage_leaves_the_parents_channels_alone():
    import gc

    @multiprocess
    def collector():
        gc.collect()  # drops the parent's garbage ends and channels, copied by the fork
        return True

    for _ in range(3):
        gc.disable()
        try:
            c = Channel("garbage", buffer=5)
            w, r = -c, +c
            w("kept")
            cycle = [c, w, r]
            cycle.append(cycle)  # garbage only a collection frees
            del c, w, r, cycle
            assert Parallel(collector()) == [True]
            # Channels made now (in memory the child may have freed) ...
            fresh = [Channel("fresh %d" % i, buffer=2) for i in range(20)]
            ends = [(-f, +f) for f in fresh]
        finally:
            gc.enable()
        gc.collect()  # ... outlive the parent's own collection of the garbage, once
        for i, (out, into) in enumerate(ends):
            out(i)
            assert into() == i
        del fresh, ends


def test_ends_inside_objects_and_closures_are_handed_to_the_child():
    class Ports:
        def __init__(self, cin):
            self.cin = cin

    class Slotted:
        __slots__ = ("cout",)

        def __init__(self, cout):
            self.cout = cout

    c, d, e = Channel("in an object"), Channel("in slots"), Channel("in a closure")
    closed_over = -e

    @multiprocess
    def child(ports, slotted):
        x = ports.cin()
        slotted.cout(x + 1)
        closed_over(os.getpid())   # an end the body's closure holds
        return x

    @process
    def parent(cout, cin, pids):
        cout(41)
        return cin(), pids()

    results = Parallel(child(Ports(+c), Slotted(-d)), parent(-c, +d, +e))
    assert results[0] == 41
    assert results[1][0] == 42 and results[1][1] != os.getpid()
    with pytest.raises(UsageError):  # (handed to the child: no longer the parent's)
        closed_over(1)


def test_forks_leave_nothing_behind_in_the_shared_arena():
    import gc

    from cspp import _cspp

    @multiprocess
    def child(cin, cout, spare):
        cout(cin() + 1)

    def one_round():
        c, d, spare = Channel("to child"), Channel("from child"), Channel("handed, unused")

        @process
        def parent(cout, cin):
            cout(1)
            return cin()

        assert Parallel(child(+c, -d, spare), parent(-c, +d))[1] == 2
        del c, d, spare
        gc.collect()

    for _ in range(5):
        one_round()
    before = _cspp._arena_in_use()
    for _ in range(40):
        one_round()
    grown = _cspp._arena_in_use() - before
    # (Every channel, end and child record goes back: a channel left behind
    # per fork would be some 40 x 3 of them.)
    assert grown < 2048, grown
