"""Alternation from Python: input, output, skip and timeout guards, actions
and @choice, priority and fairness, retire and poison in a choice."""
import time

import pytest

from cspp import (AltSelect, Alternation, Channel, ChannelPoisonException,
                  ChannelRetireException, FairSelect, InputGuard, OutputGuard, Parallel,
                  PriSelect, Skip, SkipGuard, Timeout, TimeoutGuard, choice, process, retire)

from network import produce


def test_input_guards_take_every_value_once():
    a, b = Channel("a"), Channel("b")

    @process
    def server(in1, in2):
        got = []
        while True:
            try:
                g, v = AltSelect(InputGuard(in1), InputGuard(in2))
            except ChannelRetireException:
                return got
            assert g is in1 or g is in2
            got.append(v)

    results = Parallel(produce(-a, range(100)), produce(-b, range(100, 250)), server(+a, +b))
    assert sorted(results[2]) == list(range(250))


def test_output_guards_and_actions():
    c = Channel()
    fired = []

    @process
    def sender(cout):
        for i in range(10):
            g, v = AltSelect(OutputGuard(cout, i, action=lambda: fired.append("out")),
                             TimeoutGuard(5, action=lambda: fired.append("timeout")))
            assert g is cout and v is None
        retire(cout)

    @process
    def reader(cin):
        got = []
        while True:
            try:
                got.append(cin())
            except ChannelRetireException:
                return got

    assert Parallel(sender(-c), reader(+c))[1] == list(range(10))
    assert fired == ["out"] * 10


def test_skip_and_timeout():
    c = Channel()
    cin = +c
    g, v = PriSelect(InputGuard(cin), SkipGuard())
    assert isinstance(g, Skip) and v is None
    start = time.monotonic()
    g, v = AltSelect(InputGuard(cin), TimeoutGuard(seconds=0.1))
    assert isinstance(g, Timeout)
    assert time.monotonic() - start >= 0.1


def test_input_actions_get_the_value_and_choice_binds_arguments():
    c = Channel(buffer=2)
    cout, cin = -c, +c
    seen = []

    @choice
    def got(tag, channel_input=None):
        seen.append((tag, channel_input))

    cout("x")
    cout("y")
    Alternation([{cin: got("first")}]).execute()
    Alternation([{cin: lambda channel_input: seen.append(("plain", channel_input))}]).execute()
    assert seen == [("first", "x"), ("plain", "y")]


def test_select_runs_no_action():
    c = Channel(buffer=1)
    (-c)(5)
    ran = []
    g, v = Alternation([{+c: lambda channel_input: ran.append(1)}]).select()
    assert v == 5 and ran == []


def test_priority_prefers_the_first_ready_guard():
    a, b = Channel(buffer=10), Channel(buffer=10)
    for i in range(5):
        (-a)(i)
        (-b)(i)
    ina, inb = +a, +b
    for _ in range(5):
        g, _ = PriSelect(InputGuard(ina), InputGuard(inb))
        assert g is ina


def test_fair_execute_serves_every_ready_guard():
    chans = [Channel(buffer=100) for _ in range(3)]
    for c in chans:
        out = -c
        for i in range(30):
            out(i)
    ends = [+c for c in chans]
    alt = Alternation([{e: None} for e in ends])
    counts = {id(e): 0 for e in ends}
    for _ in range(30):
        g, _ = alt.fair_execute()
        counts[id(g)] += 1
    assert sorted(counts.values()) == [10, 10, 10]


def test_fair_select_chooses_among_ready_guards():
    a, b = Channel(buffer=200), Channel(buffer=200)
    for i in range(100):
        (-a)(i)
        (-b)(i)
    ina, inb = +a, +b
    picks = [FairSelect(InputGuard(ina), InputGuard(inb))[0] is ina for _ in range(100)]
    assert 20 < sum(picks) < 80


def test_all_retired_channel_guards_end_the_choice_even_with_a_timeout():
    c = Channel()
    retire(-c)
    with pytest.raises(ChannelRetireException):
        AltSelect(InputGuard(+c), TimeoutGuard(seconds=0.05))


def test_poison_in_a_choice():
    c = Channel()
    cin = +c
    c.poison()
    with pytest.raises(ChannelPoisonException):
        AltSelect(InputGuard(cin), SkipGuard())


def test_misuse_is_a_clear_error():
    with pytest.raises(TypeError):
        AltSelect("not a guard")
    with pytest.raises(TypeError):
        InputGuard(-Channel())


def test_fair_and_random_choice_never_prefer_skip_over_a_ready_channel():
    c = Channel(buffer=200)
    out, cin = -c, +c
    for i in range(120):
        out(i)
    for _ in range(50):
        g, v = FairSelect(InputGuard(cin), SkipGuard())
        assert g is cin
    alt = Alternation([{SkipGuard(): None}, {cin: None}])
    for _ in range(50):
        g, v = alt.fair_execute()
        assert g is cin


def test_pycsp_guard_forms():
    c = Channel(buffer=1)
    out, cin = -c, +c
    skip = SkipGuard()
    g, v = AltSelect(InputGuard(cin), skip)
    assert g is skip and isinstance(g, Skip)
    fired = []
    Alternation([{SkipGuard(): lambda: fired.append("skip")}]).execute()
    Alternation([(out, "x", lambda: fired.append("out"))]).execute()
    g, v = AltSelect([InputGuard(cin), TimeoutGuard(seconds=1)])
    assert (g, v) == (cin, "x")
    assert fired == ["skip", "out"]
