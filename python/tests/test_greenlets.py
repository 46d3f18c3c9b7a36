"""cspp.greenlets: green processes, greenlets of the thread that runs
Parallel, on csp's channels. What only they do: they share that thread, a
waiting one lets the others run, they mix with thread processes, C++ fibers
and @io calls on one channel, and every value is read exactly once."""
import random
import threading
import time

import pytest

import cspp
import cspp.greenlets as green
from cspp import Channel, ChannelPoisonException, ChannelRetireException, Parallel, retire


@green.process
def produce(cout, values):
    for v in values:
        cout(v)
    retire(cout)


@green.process
def collect(cin, got):
    while True:
        got.append(cin())


def test_green_processes_share_the_thread_that_runs_parallel():
    seen = []

    @green.process
    def where():
        seen.append((threading.get_ident(), green.current_process_id()))

    Parallel(where(), where(), 3 * where())
    assert {t for t, _ in seen} == {threading.get_ident()}
    ids = [i for _, i in seen]
    assert len(set(ids)) == 5 and all(i.startswith("where.") for i in ids)
    assert green.current_process_id() == "main"


def test_any_to_any_among_green_processes_every_value_once():
    c = Channel("a2a", buffer=3)
    got = [[] for _ in range(4)]
    writers = [produce(-c, range(k * 1000, (k + 1) * 1000)) for k in range(5)]
    readers = [collect(+c, got[k]) for k in range(4)]
    Parallel(writers, readers)
    every = sorted(v for g in got for v in g)
    assert every == list(range(5000))
    for g in got:  # each writer's values arrive in its order
        for k in range(5):
            mine = [v for v in g if k * 1000 <= v < (k + 1) * 1000]
            assert mine == sorted(mine)


def test_green_and_thread_processes_on_one_channel():
    c = Channel("mixed")
    got_green, got_thread = [], []
    Parallel(produce(-c, range(0, 2000)),
             cspp.process(produce.__wrapped__)(-c, range(2000, 4000)),
             collect(+c, got_green),
             cspp.process(collect.__wrapped__)(+c, got_thread))
    assert sorted(got_green + got_thread) == list(range(4000))


def test_a_waiting_green_process_lets_the_others_run():
    late = Channel("late")
    order = []

    @cspp.process
    def thread_writer(cout):
        time.sleep(0.2)
        order.append("written")
        cout("late value")

    @green.process
    def waits(cin):
        v = cin()
        order.append("read")
        return v

    @green.process
    def busy_meanwhile():
        c = Channel("inner")
        got = []
        Parallel(produce(-c, range(100)), collect(+c, got))
        order.append("inner done")
        return len(got)

    results = Parallel(thread_writer(-late), waits(+late), busy_meanwhile())
    assert results[1:] == ["late value", 100]
    assert order == ["inner done", "written", "read"]


def test_io_runs_a_blocking_call_on_a_thread_of_its_own():
    events = []

    @green.io
    def slow(x):
        time.sleep(0.2)
        events.append("slept")
        return threading.get_ident(), x

    @green.process
    def sleeper():
        return slow(7)

    @green.process
    def ticker():
        for _ in range(5):
            events.append("tick")
            green.AltSelect(green.TimeoutGuard(0.01))
        return events.count("tick")

    (ident, x), n = Parallel(sleeper(), ticker())
    assert x == 7 and ident != threading.get_ident()
    assert n == 5 and events == ["tick"] * 5 + ["slept"]  # it ticked while the call slept

    @green.io
    def fails():
        raise ValueError("from io")

    @green.process
    def calls():
        fails()

    with pytest.raises(ValueError, match="from io"):
        Parallel(calls())


def test_timeouts_of_green_processes_fire_while_others_wait():
    never = Channel("never written")
    keep = -never  # (a writer lives: no deadlock to report)

    @green.process
    def waits_with_timeout(cin, seconds):
        start = time.monotonic()
        g, v = green.AltSelect(green.InputGuard(cin), green.TimeoutGuard(seconds))
        return (g is not None and v is None, time.monotonic() - start)

    results = Parallel([waits_with_timeout(+never, s) for s in (0.05, 0.1, 0.15)])
    for (timed_out, took), s in zip(results, (0.05, 0.1, 0.15)):
        assert timed_out and s * 0.9 <= took < s + 0.5
    del keep


def test_poison_and_retire_reach_green_processes_blocked_anywhere():
    a, b = Channel("a"), Channel("b", buffer=2)
    ended = []

    @green.process
    def blocked_reader(cin, tag):
        try:
            cin()
        except ChannelPoisonException:
            ended.append(tag)
            raise

    @green.process
    def poisoner(cout):
        time.sleep(0.01)
        cspp.poison(cout)

    Parallel(blocked_reader(+a, 1), blocked_reader(+a, 2), poisoner(-a))
    assert sorted(ended) == [1, 2]

    got = []
    Parallel(produce(-b, range(10)), collect(+b, got), collect(+b, got))
    assert sorted(got) == list(range(10))


def test_a_thread_process_hosts_green_processes_of_its_own():
    c = Channel("between hubs")
    got = []

    @cspp.process
    def hosts_greens(cout):
        # (This thread's own hub: green processes of its own.)
        inner = Channel("inner")
        out = []
        Parallel(produce(-inner, range(50)), collect(+inner, out))
        for v in out:
            cout(v)
        retire(cout)
        return threading.get_ident()

    ident, _ = Parallel(hosts_greens(-c), collect(+c, got))
    assert got == list(range(50)) and ident != threading.get_ident()


def test_objects_keep_their_identity_and_are_released():
    import sys
    c = Channel("objects")
    sent = [object() for _ in range(100)]
    before = [sys.getrefcount(o) for o in sent]
    got = []
    Parallel(produce(-c, sent), collect(+c, got))
    assert all(a is b for a, b in zip(sent, got)) and len(got) == 100
    del got
    assert [sys.getrefcount(o) for o in sent] == before


def test_a_ring_of_a_thousand_green_processes():
    n = 1000
    chans = [Channel("ring%d" % i) for i in range(n)]

    @green.process
    def node(cin, cout):
        cout(cin() + 1)

    @green.process
    def start(cout, cin):
        cout(0)
        return cin()

    procs = [node(+chans[i], -chans[i + 1]) for i in range(n - 1)]
    result = Parallel(start(-chans[0], +chans[n - 1]), procs)
    assert result[0] == n - 1


def test_pycsp_style_random_network_counts_every_value():
    # PyCSP's autotest habit: Any2Any with random pauses, counted.
    rnd = random.Random(17)
    c = Channel("a2a", buffer=rnd.choice([0, 1, 5]))
    got = []

    @green.process
    def writer(cout, k):
        for i in range(200):
            if rnd.random() < 0.05:
                green.AltSelect(green.TimeoutGuard(0.0005))
            cout((k, i))
        retire(cout)

    @green.process
    def reader(cin):
        try:
            while True:
                got.append(cin())
                if rnd.random() < 0.05:
                    green.AltSelect(green.TimeoutGuard(0.0005))
        except ChannelRetireException:
            raise

    Parallel([writer(-c, k) for k in range(4)], 3 * reader(+c))
    assert sorted(got) == [(k, i) for k in range(4) for i in range(200)]


def test_a_wake_up_from_another_thread_is_not_starved_by_busy_green_processes():
    # Two green processes that keep each other ready for ever must not keep
    # out a third that a thread process wakes: it ends their game.
    ping, pong, late = Channel("ping"), Channel("pong"), Channel("late")

    @green.process
    def player(cin, cout, first):
        if first:
            cout(0)
        while True:
            cout(cin() + 1)

    @cspp.process
    def thread_writer(cout):
        time.sleep(0.05)
        cout("stop")

    @green.process
    def referee(cin, game):
        v = cin()
        cspp.poison(game)
        return v

    results = Parallel(player(+ping, -pong, True), player(+pong, -ping, False),
                       thread_writer(-late), referee(+late, -ping))
    assert results[-1] == "stop"


def test_the_exit_waits_for_spawned_green_processes(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "spawned.py"
    script.write_text(
        "from cspp.greenlets import *\n"
        "@process\n"
        "def late(cin):\n"
        "    print('late got', cin(), flush=True)\n"
        "@process\n"
        "def writer(cout):\n"
        "    cout(42)\n"
        "c = Channel()\n"
        "Spawn(late(+c))\n"
        "Spawn(writer(-c))\n"
        "print('main done', flush=True)\n")
    run = subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "main done\nlate got 42\n", (run.stdout, run.stderr)
