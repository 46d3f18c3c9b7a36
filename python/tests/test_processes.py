"""Processes from Python: results in order, exceptions re-raised naming the
process, poison and retire passed on, proc * n, Sequence, Spawn, deadlocks."""
import threading
import time

import pytest

import cspp
from cspp import (Channel, ChannelPoisonException, DeadlockError, Parallel, Sequence,
                  Spawn, current_process_id, multiprocess, process, retire)


@process
def double(x):
    return 2 * x


def test_results_in_order():
    assert Parallel(double(1), double(2), [double(3), double(4)]) == [2, 4, 6, 8]
    assert Sequence(double(5), double(6)) == [10, 12]
    assert Parallel() == []


@pytest.mark.threads_only
def test_parallel_runs_concurrently():
    @process
    def nap():
        time.sleep(0.3)

    start = time.monotonic()
    Parallel(nap(), nap(), nap())
    assert time.monotonic() - start < 0.8


def test_sequence_runs_in_order():
    order = []

    @process
    def note(i):
        time.sleep(0.01 * (3 - i))  # (concurrent, they would end in the other order)
        order.append(i)

    Sequence(note(0), note(1), note(2))
    assert order == [0, 1, 2]


def test_an_exception_is_reraised_naming_the_process_and_poisons_its_ends():
    c = Channel("c")
    seen = []

    @process
    def failing(cout):
        raise ValueError("bad input")

    @process
    def waiting(cin):
        try:
            cin()
        except ChannelPoisonException:
            seen.append("poisoned")
            raise

    with pytest.raises(ValueError) as info:
        Parallel(failing(-c), waiting(+c))
    assert "failing" in "".join(getattr(info.value, "__notes__", []))
    assert seen == ["poisoned"]


def test_poison_passes_on_through_a_pipeline():
    a, b, c = Channel("a"), Channel("b"), Channel("c")

    @process
    def source(cout):
        cout(1)
        cout.poison()

    @process
    def stage(cin, cout):
        while True:
            cout(cin() + 1)

    @process
    def sink(cin, got):
        while True:
            got.append(cin())

    got = []
    Parallel(source(-a), stage(+a, -b), stage(+b, -c), sink(+c, got))
    assert got in ([], [3])  # poison may overtake the value; nobody blocks for ever


def test_retire_passes_on_and_every_worker_ends():
    jobs, results = Channel("jobs"), Channel("results")

    @process
    def source(cout, n):
        for i in range(n):
            cout(i)
        retire(cout)

    @process
    def worker(cin, cout):
        while True:
            cout(cin() * cin() if False else cin() * 10)

    @process
    def sink(cin, got):
        while True:
            got.append(cin())

    got = []
    Parallel(source(-jobs, 300), 4 * worker(+jobs, -results), sink(+results, got))
    assert sorted(got) == [i * 10 for i in range(300)]


def test_multiplied_processes_get_their_own_ends():
    c = Channel()
    ps = 3 * double(1)
    assert len(ps) == 3 and all(isinstance(p, cspp.Process) for p in ps)

    @process
    def w(cout):
        cout(1)
        retire(cout)

    writers = w(-c) * 3
    assert len({id(p.args[0]) for p in writers}) == 3
    total = []

    @process
    def r(cin):
        while True:
            total.append(cin())

    Parallel(writers, r(+c))
    assert total == [1, 1, 1]


def test_a_deadlock_is_reported_not_a_hang():
    a, b = Channel("left"), Channel("right")

    @process
    def p(cin, cout):
        cin()
        cout(1)

    with pytest.raises(DeadlockError) as info:
        Parallel(p(+a, -b), p(+b, -a))
    assert "left" in str(info.value) and "right" in str(info.value)


def test_spawn_runs_in_the_background():
    c = Channel()

    @process
    def child(cout):
        cout(current_process_id())

    Spawn(child(-c))
    got = (+c)()
    assert got.startswith("child.")
    assert current_process_id() == "main"


def test_spawned_from_a_process_is_joined_when_that_process_ends():
    # The child waits for a value that a plain thread writes a while later;
    # its parent returns at once. Parallel(parent) must still wait for the
    # child (csp::Spawn's rule), so the child's note is there when it returns.
    go = Channel("go")
    log = []

    @process
    def child(cin):
        log.append("child got %d" % cin())

    @process
    def parent(cin):
        Spawn(child(cin))
        log.append("parent returns")

    def later(cout):
        time.sleep(0.3)
        cout(7)

    writer = threading.Thread(target=later, args=(-go,))
    writer.start()
    Parallel(parent(+go))
    assert log == ["parent returns", "child got 7"]
    writer.join()


def _stderr_until(capfd, text, count=1, seconds=10):
    # What the test's stderr holds once `text` is there `count` times (a
    # process spawned by the main program ends when it ends), or at the deadline.
    err = ""
    deadline = time.monotonic() + seconds
    while err.count(text) < count and time.monotonic() < deadline:
        time.sleep(0.02)
        err += capfd.readouterr().err
    return err


def test_a_spawned_process_that_fails_says_so_on_stderr(capfd):
    # Nobody waits for its result, so its error would be lost: it is printed
    # with its traceback (csp::Spawn logs it; Python prints a thread's).
    @process
    def failing():
        raise ValueError("spawned and failed")

    @process
    def spawning(p):
        Spawn(p)

    Spawn(failing())  # (green: it runs while the main program waits in csp)
    Parallel(spawning(failing()))  # (joins what it spawned)
    err = _stderr_until(capfd, "ValueError: spawned and failed", 2)
    assert err.count("ValueError: spawned and failed") == 2
    assert err.count("cspp: spawned process failing.") == 2
    assert err.count('raise ValueError("spawned and failed")') == 2  # (the traceback)
    # Run by Parallel, a failure is raised, not printed; and a process object
    # that failed once and then runs well, spawned, prints nothing.
    calls = []

    @process
    def fails_once():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("the first run fails")

    q = fails_once()
    with pytest.raises(ValueError):
        Parallel(q)
    Parallel(spawning(q))  # (joined: it has ended, and printed if it would, by now)
    assert len(calls) == 2
    assert capfd.readouterr().err == ""


def test_a_spawned_multiprocess_that_fails_prints_its_childs_traceback(capfd):
    @multiprocess
    def failing_child():
        raise KeyError("in the child")

    Spawn(failing_child())
    err = _stderr_until(capfd, 'KeyError: \'in the child\'')  # (the traceback's last line)
    assert "cspp: spawned process failing_child." in err
    assert "Traceback" in err and 'raise KeyError("in the child")' in err


def test_processes_must_be_processes():
    with pytest.raises(TypeError):
        Parallel(lambda: 1)


def test_nested_parallel_inside_a_process():
    @process
    def outer():
        return sum(Parallel(double(1), double(2)))

    assert Parallel(outer(), outer()) == [6, 6]


def test_many_processes():
    c = Channel(buffer=10)

    @process
    def one(cout, i):
        cout(i)

    @process
    def all_of(cin, n):
        return sorted(cin() for _ in range(n))

    results = Parallel([one(-c, i) for i in range(200)], all_of(+c, 200))
    assert results[-1] == list(range(200))
