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
