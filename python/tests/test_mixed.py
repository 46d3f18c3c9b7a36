"""One network, two languages: channels made in C++ read and written from
Python, C++ processes (fibers) in Python's Parallel beside Python processes,
retire, poison and failures across the boundary (_cspp_testnet, testnet.cpp)."""
import os
import subprocess
import sys
import textwrap

import pytest

import _cspp_testnet as net
from cspp import (Channel, ChannelPoisonException, ChannelRetireException, DeadlockError,
                  Parallel, poison, process, retire)

from network import collect, produce


def test_python_feeds_a_cpp_fiber_that_python_drains():
    a, b = net.int_channel("a"), net.int_channel("b", 3)
    results = Parallel(produce(-a, range(1000)), net.doubler(+a, -b), collect(+b))
    assert results[2] == [2 * i for i in range(1000)]
    assert results[1] == 1000  # the C++ process's result, as a Python int


def test_several_cpp_and_python_processes_any_to_any():
    a, b = net.int_channel("a"), net.int_channel("b")
    results = Parallel([produce(-a, range(i * 100, (i + 1) * 100)) for i in range(3)],
                       [net.doubler(+a, -b) for _ in range(2)],
                       [collect(+b) for _ in range(2)])
    got = sorted(results[-1] + results[-2])
    assert got == [2 * i for i in range(300)]
    assert results[3] + results[4] == 300


def test_a_cpp_sum_of_python_values():
    a = net.int_channel("a")
    assert Parallel(produce(-a, range(101)), net.summer(+a))[1] == 5050


def test_strings_tuples_bytes_and_floats_cross():
    r, s = net.record_channel("records"), net.str_channel("strings")
    results = Parallel(produce(-r, [(1, 0.5, "one"), (2, 2.25, "two")]), net.describe(+r, -s), collect(+s))
    assert results[2] == ["one:1:0.500000", "two:2:2.250000"]
    x, y = net.bytes_channel("x"), net.bytes_channel("y")
    results = Parallel(produce(-x, [b"ab", b"\x00\xff"]), net.echo_bytes(+x, -y), collect(+y))
    assert results[2] == [b"ab!", b"\x00\xff!"]
    d = net.double_channel("d")
    out, into = -d, +d

    @process
    def w(cout):
        cout(1.5)
        cout(3)  # an int is a fine double

    @process
    def r2(cin):
        return [cin(), cin()]

    assert Parallel(w(out), r2(into))[1] == [1.5, 3.0]


def test_a_wrong_value_is_a_type_error_in_the_writer():
    a = net.int_channel("ints", 1)
    with pytest.raises(TypeError):
        (-a)("not a number")


def test_poison_crosses_both_ways():
    a, b = net.int_channel("a"), net.int_channel("b")

    @process
    def poisoner(cout):
        cout(1)
        poison(cout)

    @process
    def reader(cin):
        got = []
        try:
            while True:
                got.append(cin())
        except ChannelPoisonException:
            return got

    results = Parallel(poisoner(-a), net.doubler(+a, -b), reader(+b))
    assert results[2] in ([], [2])


def test_a_cpp_failure_is_reraised_naming_the_process():
    a = net.int_channel("a")
    with pytest.raises(IndexError) as info:  # std::out_of_range is Python's IndexError
        Parallel(produce(-a, [-1]), net.failing(+a))
    assert "failing" in "".join(getattr(info.value, "__notes__", []))


def test_channels_go_back_to_cpp():
    a = net.int_channel("given")
    assert net.name_in_cpp(a) == "given"
    with pytest.raises(TypeError):
        net.name_in_cpp(Channel("python objects"))
    with pytest.raises(TypeError):
        net.doubler(+Channel("objects"), -a)

    @process
    def w(cout):
        cout(42)

    @process
    def r(c):
        return net.read_one(c)  # a blocking C++ read on a Python thread

    assert Parallel(w(-a), r(a))[1] == 42


def test_a_deadlock_across_the_languages_is_reported():
    a, b = net.int_channel("cpp-side"), net.int_channel("python-side")

    @process
    def stuck(cin):
        cin()

    with pytest.raises(DeadlockError) as info:
        Parallel(net.doubler(+a, -b), stuck(+b))
    assert "cpp-side" in str(info.value) or "python-side" in str(info.value)


def test_a_cpp_process_runs_once():
    a = net.int_channel("a")
    p = net.summer(+a)
    retire_end = -a
    retire(retire_end)
    assert Parallel(p) == [0]
    with pytest.raises(ValueError):
        Parallel(p)


def test_an_end_handed_to_cpp_is_cpps():
    a, b = net.int_channel("a"), net.int_channel("b")
    into, out = +a, -b
    p = net.doubler(into, out)
    with pytest.raises(ValueError):  # cspp.UsageError
        into()
    writer, reader = -a, +b

    @process
    def feed(cout):
        cout(5)
        retire(cout)

    @process
    def take(cin):
        return cin()

    assert Parallel(feed(writer), p, take(reader)) == [None, 1, 10]


def test_a_failed_conversion_takes_nothing():
    b = net.int_channel("b", 1)
    with pytest.raises(TypeError):
        net.doubler(+Channel("objects"), -b)  # the first end is wrong: -b stays Python's
    out = -b
    out(1)
    assert (+b)() == 1


def test_a_thread_that_takes_the_gil_back_as_the_program_exits_ends_quietly(tmp_path):
    # CPython 3.11 ends a thread that asks for the GIL while the interpreter
    # finalizes with pthread_exit, whose forced unwind through a noexcept
    # frame aborts the program ("terminate called without an active
    # exception"). Here a thread lets the GIL go in C++ and asks for it back
    # while the main thread keeps it (a switch interval of 1000 s) until the
    # program exits: cspp's atexit hook lets it through first (and should it
    # not, the unwind passes NoGil). The slow __del__ frees the GIL again
    # while the interpreter finalizes.
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent("""
        import sys, threading, time
        import cspp
        import _cspp_testnet as net

        class SlowToGo:
            def __del__(self):
                time.sleep(0.5)

        keep = SlowToGo()
        sys.setswitchinterval(1000)
        threading.Thread(target=net.away_from_python, args=(0.1,), daemon=True).start()
        deadline = time.monotonic() + 30
        while not net.about_to_take_gil():
            if time.monotonic() > deadline:
                sys.exit("the thread never came back")
        end = time.monotonic() + 0.2  # (it waits for the GIL now)
        while time.monotonic() < end:
            pass
        print("done")
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert run.stdout == "done\n"
    assert "terminate" not in run.stderr
