"""The behaviour PyCSP's own test programs check (its commtest, buffertest,
guardtest and poisontest: counts and vocabularies of values over One2One,
Any2One and Any2Any networks, with random sleeps), written anew on cspp
through PyCSP's names only."""
import random
import time

import pytest

from cspp.pycsp import *


def nap(rng, top=0.002):
    if rng.random() < 0.3:
        time.sleep(rng.random() * top)


@process
def source(cout, ident, n, seed):
    rng = random.Random(seed)
    for i in range(n):
        nap(rng)
        cout((ident, i))
    retire(cout)


@process
def sink(cin, seed):
    rng = random.Random(seed)
    got = []
    try:
        while True:
            nap(rng)
            got.append(cin())
    except ChannelRetireException:
        return got


def check_vocabulary(results, writers, n):
    got = [v for r in results if isinstance(r, list) for v in r]
    assert sorted(got) == sorted((w, i) for w in range(writers) for i in range(n))
    for w in range(writers):  # each writer's values arrive in its order at each reader
        for r in results:
            if isinstance(r, list):
                mine = [i for (ww, i) in r if ww == w]
                assert mine == sorted(mine)


@pytest.mark.parametrize("buffer", [0, 1, 10])
@pytest.mark.parametrize("writers,readers", [(1, 1), (5, 1), (5, 3)])
def test_one2one_any2one_any2any(writers, readers, buffer):
    c = Channel("net", buffer=buffer)
    n = 60
    results = Parallel([source(-c, w, n, w) for w in range(writers)],
                       [sink(+c, 100 + r) for r in range(readers)])
    check_vocabulary(results, writers, n)


def test_guards_over_any2any_with_random_sleeps():
    chans = [Channel("g%d" % i) for i in range(3)]

    @process
    def server(ins, seed):
        rng = random.Random(seed)
        got = []
        alt = Alternation([{i: None} for i in ins])
        while True:
            try:
                _, v = alt.fair_execute() if rng.random() < 0.5 else alt.execute()
            except ChannelRetireException:
                return got
            got.append(v)
            nap(rng)

    writers = [source(-chans[i % 3], i, 40, i) for i in range(6)]
    results = Parallel(writers, server([+c for c in chans], 7), server([+c for c in chans], 8))
    check_vocabulary(results, 6, 40)


def test_output_guards_against_input_guards():
    c = Channel("both-sides")
    n = 200

    @process
    def giver(cout):
        i = 0
        while i < n:
            g, _ = AltSelect(OutputGuard(cout, i), TimeoutGuard(seconds=1))
            if g is cout:
                i += 1
        retire(cout)

    @process
    def taker(cin):
        got = []
        while True:
            try:
                _, v = AltSelect(InputGuard(cin), TimeoutGuard(seconds=1))
            except ChannelRetireException:
                return got
            if v is not None:
                got.append(v)

    assert Parallel(giver(-c), taker(+c))[1] == list(range(n))


def test_poison_through_a_network_leaves_nobody_blocked():
    a, b, c = Channel("a"), Channel("b", buffer=5), Channel("c")

    @process
    def counter(cout):
        i = 0
        while True:
            cout(i)
            i += 1

    @process
    def relay(cin, cout):
        while True:
            cout(cin())

    @process
    def stopper(cin, n):
        for _ in range(n):
            cin()
        poison(cin)
        return n

    start = time.monotonic()
    results = Parallel(counter(-a), 3 * relay(+a, -b), relay(+b, -c), stopper(+c, 500))
    assert results[-1] == 500
    assert time.monotonic() - start < 20


def test_pycsp_names_are_all_there():
    import cspp.pycsp as m
    for name in ["process", "Channel", "Parallel", "Sequence", "Spawn", "Alternation",
                 "AltSelect", "PriSelect", "FairSelect", "InputGuard", "OutputGuard",
                 "SkipGuard", "TimeoutGuard", "retire", "poison", "io", "choice",
                 "current_process_id", "version", "shutdown", "ChannelPoisonException",
                 "ChannelRetireException"]:
        assert hasattr(m, name), name
    shutdown()
    assert io(lambda x: x + 1)(1) == 2
    assert isinstance(version, tuple)


# PyCSP runs an action given as a string of code in the namespace of the
# frame that called execute(), with channel_input set there on input; its
# Alternation takes ensurePriority. (Module-level names here, so that what
# the strings assign can be seen: a function's locals are a snapshot.)
string_log = []


def test_string_actions_run_in_the_callers_frame():
    c, d = Channel("c", buffer=1), Channel("d", buffer=1)
    cin, dout = +c, -d
    (-c)(41)
    local_name = "here"  # noqa: F841  (read by the action)
    Alternation([{cin: "string_log.append((local_name, channel_input + 1))"}]).execute()
    Alternation([{(dout, 5): "string_log.append('wrote')"}], ensurePriority=False).execute()
    assert (+d)() == 5
    (-c)(1)
    AltSelect(InputGuard(cin, action="string_log.append(('alt', channel_input))"))
    (-c)(2)
    FairSelect(InputGuard(cin, action="string_log.append(('fair', channel_input))"))

    def nested():
        alt = Alternation([{cin: "string_log.append(('up', depth))"}])
        alt.set_execute_frame(-2)  # the frame of nested's caller
        alt.execute()

    depth = "outer"  # noqa: F841
    (-c)(3)
    nested()
    assert string_log == [("here", 42), "wrote", ("alt", 1), ("fair", 2), ("up", "outer")]


def test_ensure_priority_false_chooses_among_the_ready_guards():
    a, b = Channel("a", buffer=100), Channel("b", buffer=100)
    ain, bin_ = +a, +b
    for i in range(100):
        (-a)(i)
        (-b)(i)
    firsts = {"a": 0, "b": 0}
    for _ in range(100):
        g, _ = Alternation([{ain: None}, {bin_: None}], ensurePriority=False).execute()
        firsts["a" if g is ain else "b"] += 1
    # (Random among two ready guards: each far more than 10 of 100 times, but
    # for odds under 1e-15.)
    assert firsts["a"] > 10 and firsts["b"] > 10
    g, _ = Alternation([{ain: None}, {bin_: None}]).execute()  # ensurePriority=True: the first
    assert g is ain
