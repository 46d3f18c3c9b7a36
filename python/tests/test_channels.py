"""Channels from Python: values counted, identity kept, retire and poison."""
import gc
import sys
import threading

import pytest

import cspp
from cspp import (Channel, ChannelPoisonException, ChannelRetireException, Parallel,
                  poison, process, retire)

from network import produce as producer


@process
def collector(cin, got):
    while True:
        got.append(cin())


def test_every_value_read_once_one_to_one():
    c = Channel("numbers")
    got = []
    Parallel(producer(-c, range(1000)), collector(+c, got))
    assert got == list(range(1000))


@pytest.mark.parametrize("buffer", [0, 1, 7])
def test_any_to_any_every_value_read_exactly_once(buffer):
    c = Channel("any", buffer=buffer)
    readers = [[] for _ in range(3)]
    writers = [range(i * 500, (i + 1) * 500) for i in range(4)]
    Parallel([producer(-c, w) for w in writers], [collector(+c, r) for r in readers])
    seen = sorted(v for r in readers for v in r)
    assert seen == list(range(2000))


def test_the_reader_gets_the_very_object_written():
    c = Channel()
    sent = {"payload": [1, 2, 3]}
    got = []

    @process
    def writer(cout):
        cout(sent)

    @process
    def reader(cin):
        got.append(cin())

    Parallel(writer(-c), reader(+c))
    assert got[0] is sent


def test_retire_counts_every_end():
    c = Channel()
    out1, out2 = -c, -c
    got = []

    @process
    def w(cout, n):
        for i in range(n):
            cout(i)
        retire(cout)

    Parallel(w(out1, 3), w(out2, 4), collector(+c, got))
    assert sorted(got) == [0, 0, 1, 1, 2, 2, 3]


def test_buffered_values_drain_before_retire():
    c = Channel(buffer=10)
    cout = -c
    for i in range(5):
        cout(i)
    retire(cout)
    cin = +c
    assert [cin() for _ in range(5)] == list(range(5))
    with pytest.raises(ChannelRetireException):
        cin()


def test_poison_reaches_blocked_reader_and_writer():
    c, d = Channel("c"), Channel("d")
    errors = []

    @process
    def blocked_reader(cin):
        try:
            cin()
        except ChannelPoisonException:
            errors.append("reader")
            raise

    @process
    def blocked_writer(cout):
        try:
            cout(1)
        except ChannelPoisonException:
            errors.append("writer")
            raise

    @process
    def poisoner(a, b):
        import time
        time.sleep(0.05)
        poison(a, b)

    Parallel(blocked_reader(+c), blocked_writer(-d), poisoner(-c, +d))
    assert sorted(errors) == ["reader", "writer"]


def test_poison_discards_buffer_and_is_seen_by_both_sides():
    c = Channel(buffer=3)
    cout, cin = -c, +c
    cout("a")
    c.poison()
    with pytest.raises(ChannelPoisonException):
        cin()
    with pytest.raises(ChannelPoisonException):
        cout("b")


def test_a_retired_end_used_again_throws():
    c = Channel(buffer=1)
    cout = -c
    retire(cout)
    with pytest.raises(ChannelRetireException):
        cout(1)


def test_objects_are_released_when_read_and_when_discarded():
    class Tracked:
        alive = 0

        def __init__(self):
            Tracked.alive += 1

        def __del__(self):
            Tracked.alive -= 1

    c = Channel(buffer=100)
    cout, cin = -c, +c
    for _ in range(50):
        cout(Tracked())
    for _ in range(20):
        cin()
    gc.collect()
    assert Tracked.alive == 30  # still buffered
    c.poison()  # the buffer's values are discarded, and released
    gc.collect()
    assert Tracked.alive == 0
    del c, cout, cin


def test_refcounts_balance():
    c = Channel(buffer=4)
    cout, cin = -c, +c
    x = object()
    before = sys.getrefcount(x)
    for _ in range(100):
        cout(x)
        assert cin() is x
    assert sys.getrefcount(x) == before


def test_channel_made_and_dropped_in_threads_many_times():
    # Ends dropped on several threads, values left in buffers: no crash.
    def churn():
        for i in range(200):
            c = Channel(buffer=2)
            (-c)(i)
            del c

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_bad_buffer_is_a_clear_error():
    with pytest.raises(ValueError):
        Channel(buffer=-1)


def test_names():
    c = Channel("mine")
    assert c.name == "mine"
    assert (+c).name == "mine"
    assert (+c).channel is c
    assert Channel().name.startswith("channel ")


def test_a_dropped_end_still_counts_as_in_pycsp():
    c = Channel(buffer=5)
    for i in range(3):
        (-c)(i)  # a temporary end each time: the channel does not retire
    cin = +c
    assert [cin() for _ in range(3)] == [0, 1, 2]
    w = -c
    w(3)
    retire(w)
    assert cin() == 3  # the dropped ends never retired: a read now would wait
