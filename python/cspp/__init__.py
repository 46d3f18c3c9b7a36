"""cspp: PyCSP's API on csp's channels.

    from cspp.pycsp import *          # PyCSP's names; or: import cspp

    @process
    def producer(cout, n):
        for i in range(n):
            cout(i)
        retire(cout)

    c = Channel("c")
    Parallel(producer(-c, 100), consumer(+c))

Channels are csp channels (any-to-any, buffered or not, retire and poison
counted over every end); a Python process runs on an OS thread of its own and
waits inside csp with the GIL released. Values are Python objects, moved by
reference: the reader gets the very object written.

The rules are csp's (../shared API.md, "Python"), with PyCSP's habits: a
process that ends by ChannelPoisonException poisons every channel end among
its arguments, one that ends by ChannelRetireException retires them, and
either ends quietly (its result is None). A process that raises anything else
poisons its ends too, and Parallel re-raises the first such exception (in
argument order) with a note naming the process.
"""

import functools as _functools
import io as _io
import itertools as _itertools
import os as _os
import pickle as _pickle
import random as _random
import sys as _sys
import threading as _threading
import time as _time
import traceback as _traceback
import types as _types

from . import _cspp
from ._cspp import (ChannelEndRead, ChannelEndWrite, ChannelPoisonException,
                    ChannelRetireException, DeadlockError, OSProcessError, RemoteError,
                    UsageError)

__all__ = [
    "Channel", "ChannelEndRead", "ChannelEndWrite", "process", "Process",
    "Parallel", "Sequence", "Spawn", "Alternation", "AltSelect", "PriSelect",
    "FairSelect", "InputGuard", "OutputGuard", "SkipGuard", "TimeoutGuard",
    "Skip", "Timeout", "retire", "poison", "io", "choice", "current_process_id",
    "version", "shutdown", "ChannelPoisonException", "ChannelRetireException",
    "DeadlockError", "UsageError", "multiprocess", "MultiProcess", "OSProcessError",
    "RemoteError",
]

version = (0, 9, 2, "cspp")

# ---- channels -----------------------------------------------------------------

_channel_count = 0
_channel_count_lock = _threading.Lock()


def _fresh_name():
    global _channel_count
    with _channel_count_lock:
        _channel_count += 1
        return "channel %d" % _channel_count


class Channel:
    """Channel(name=None, buffer=0): an any-to-any channel of Python objects.

    +c (or c.reader()) makes a reader end, -c (or c.writer()) a writer end;
    every end counts: the channel retires on a side when every end of that
    side has retired. (As in PyCSP, an end dropped without retiring still
    counts.) buffer=n buffers n values.
    """

    __slots__ = ("_core", "__weakref__")

    def __init__(self, name=None, buffer=0):
        if name is None:
            name = _fresh_name()
        self._core = _cspp.object_channel(str(name), int(buffer))

    @classmethod
    def _of(cls, core):
        # A channel made in C++ (cspp.hpp's to_python), as a Channel.
        c = cls.__new__(cls)
        c._core = core
        return c

    def reader(self):
        end = self._core._reader()
        end.channel = self
        return end

    def writer(self):
        end = self._core._writer()
        end.channel = self
        return end

    __pos__ = reader
    __neg__ = writer

    def poison(self):
        self._core.poison()

    @property
    def name(self):
        return self._core.name

    def __repr__(self):
        return "<Channel '%s'>" % self._core.name


def retire(*ends):
    """retire(end, ...): each end leaves its channel."""
    for e in ends:
        e.retire()


def poison(*ends):
    """poison(end_or_channel, ...): poison the channel of each."""
    for e in ends:
        e.poison()


# ---- processes ------------------------------------------------------------------

_local = _threading.local()


def current_process_id():
    """The id of the calling process (the main program's outside processes)."""
    p = _current_process()
    return p.id if p is not None else "main"


try:  # (green processes: cspp.greenlets)
    import greenlet as _greenlet_module
    _greenlet = _greenlet_module.getcurrent if _cspp.have_greenlets else None
except ImportError:
    _greenlet = None


def _green_process():
    return getattr(_greenlet(), "_cspp_process", None)


def _is_end(x):
    return isinstance(x, (ChannelEndRead, ChannelEndWrite))


def _ends_in(x, found):
    if _is_end(x):
        found.append(x)
    elif isinstance(x, (list, tuple)):
        for y in x:
            _ends_in(y, found)
    elif isinstance(x, dict):
        for y in x.values():
            _ends_in(y, found)
    return found


def _fresh_ends(x):
    # For proc * n: each copy gets ends of its own (they count).
    if _is_end(x):
        e = x._another()
        e.channel = x.channel
        return e
    if isinstance(x, list):
        return [_fresh_ends(y) for y in x]
    if isinstance(x, tuple):
        return tuple(_fresh_ends(y) for y in x)
    if isinstance(x, dict):
        return {k: _fresh_ends(v) for k, v in x.items()}
    return x


def _quietly(f, ends):
    # (Passing poison or retire on never fails: an end already retired, or
    # handed to a @multiprocess, is left as it is.)
    for e in ends:
        try:
            f(e)
        except (ChannelRetireException, ChannelPoisonException, UsageError):
            pass


_process_ids = _itertools.count(1)  # (next() on it is atomic under the GIL)


class Process:
    """A deferred call of a process body: nothing runs until Parallel,
    Sequence or Spawn runs it."""

    def __init__(self, fn, *args, **kwargs):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = getattr(fn, "__name__", "process")
        self.id = "%s.%d" % (self.name, next(_process_ids))
        self.result = None
        self.error = None
        self._spawned = []  # the joins of what its body Spawned: waited for as it ends

    def __mul__(self, n):
        if not isinstance(n, int) or n < 0:
            return NotImplemented
        if getattr(self, "_cpp", False) and n != 1:
            raise TypeError("cspp: a C++ process runs once; make %d of them in C++ instead" % n)
        if n == 0:
            return []
        return [self] + [type(self)(self.fn, *_fresh_ends(self.args), **_fresh_ends(self.kwargs))
                         for _ in range(n - 1)]

    __rmul__ = __mul__

    def _ends(self):
        return _ends_in(self.kwargs, _ends_in(self.args, []))

    def run(self):
        """Run the body here (on the calling thread), with PyCSP's rules."""
        _local.process, outer = self, getattr(_local, "process", None)
        try:
            self._body()
        finally:
            _local.process = outer

    def _body(self):
        self.error = None  # (a process object may run again)
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except ChannelPoisonException:
            _quietly(lambda e: e.poison(), self._ends())
        except ChannelRetireException:
            _quietly(lambda e: e.retire(), self._ends())
        except BaseException as e:  # (KeyboardInterrupt, SystemExit too)
            if _greenlet is not None and isinstance(e, _greenlet_module.GreenletExit):
                raise  # (its greenlet is being killed: at exit)
            self.error = e
            _quietly(lambda e: e.poison(), self._ends())
        # What it spawned is joined as it ends, however it ended (the rule
        # of csp::Spawn).
        while self._spawned:
            self._spawned.pop(0).wait(False)

    def _thread_body(self, join, spawned=False):
        try:
            _cspp.name_thread(self.name)
            self.run()
            if spawned:
                _report_spawned(self)
        finally:
            join.arrive()

    def __repr__(self):
        return "<Process %s>" % self.id


class GreenProcess(Process):
    """A process run as a greenlet of the thread that runs Parallel (or
    Spawn), among the others of that thread, as PyCSP's greenlets variant
    runs them (cspp.greenlets's @process). It waits inside csp without
    holding the thread: while it waits, the thread's other green processes
    run. Every green process of a thread takes turns on that one thread, so
    a blocking call other than csp's (time.sleep, a read of a file or socket)
    holds them all: wrap it in cspp.greenlets's @io."""

    def run(self):
        g = _greenlet()
        outer = getattr(g, "_cspp_process", None)
        g._cspp_process = self
        try:
            self._body()
        finally:
            g._cspp_process = outer
        if isinstance(self.error, KeyboardInterrupt):
            # (Ctrl-C: Python's handler runs in whichever greenlet runs
            # Python then. The main thread's Parallel raises it.)
            _cspp.green_interrupted()

    def _green_body(self, join, spawned=False):
        try:
            self.run()
            if spawned:
                _report_spawned(self)
        finally:
            join.arrive()


def _cpp_process(name, run):
    # A C++ process handed over by an extension module (cspp.hpp's
    # to_python): a Process whose body runs it as a fiber and waits.
    p = Process(run)
    p.name = name
    p.id = name + p.id[p.id.rfind("."):]
    p._cpp = True
    return p


def _decorator(kind):
    # @process, @multiprocess, cspp.greenlets's @process: calling the
    # decorated function makes a `kind` (a deferred call).
    def decorate(fn):
        def make(*args, **kwargs):
            return kind(fn, *args, **kwargs)
        make.__name__ = getattr(fn, "__name__", "process")
        make.__doc__ = getattr(fn, "__doc__", None)
        make.__wrapped__ = fn
        return make
    return decorate


def process(fn):
    """@process: calling the decorated function makes a Process."""
    return _decorator(Process)(fn)


_ATOMS = (str, bytes, bytearray, int, float, complex, bool, type(None), type, _types.ModuleType,
          _types.BuiltinFunctionType)


def _parts_of(x):
    # What a @multiprocess's walk looks inside: containers, an object's
    # attributes (__dict__ and __slots__), a function's closure and
    # defaults, a bound method, a functools.partial.
    if isinstance(x, dict):
        return list(x.values())
    if isinstance(x, (list, tuple, set, frozenset)):
        return list(x)
    if isinstance(x, _types.FunctionType):
        parts = list(x.__defaults__ or ()) + list((x.__kwdefaults__ or {}).values())
        for cell in x.__closure__ or ():
            try:
                parts.append(cell.cell_contents)
            except ValueError:  # (an empty cell)
                pass
        return parts
    if isinstance(x, _types.MethodType):
        return [x.__self__, x.__func__]
    if isinstance(x, _functools.partial):
        return [x.func, x.args, x.keywords]
    parts = []
    d = getattr(x, "__dict__", None)
    if isinstance(d, dict):
        parts.extend(d.values())
    for klass in type(x).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if isinstance(slot, str) and slot not in ("__dict__", "__weakref__"):
                try:
                    parts.append(getattr(x, slot))
                except AttributeError:
                    pass
    return parts


_WALK_BUDGET = 20000  # objects a @multiprocess's walk looks at, at most


def _walk(x, found, seen, want, depth=0):
    # Ends (want=_is_end) or channel cores found in x, up to 8 levels deep,
    # each object looked at once, 20000 at most. Not inside other processes
    # or threads (their ends are theirs), nor into what cannot be looked at
    # (an attribute access that raises).
    if (isinstance(x, _ATOMS) or depth > 8 or id(x) in seen or len(seen) >= _WALK_BUDGET
            or isinstance(x, (Process, _threading.Thread))):
        return found
    seen.add(id(x))
    hit = want(x)
    if hit is not None:
        found.append(hit)
        return found
    try:
        parts = _parts_of(x)
    except Exception:
        return found
    for y in parts:
        _walk(y, found, seen, want, depth + 1)
    return found


def _fresh_stream(stream, fd):
    # A forked child writes to its own buffer: the parent's unflushed text,
    # copied by the fork, is the parent's to write (once).
    try:
        if stream.fileno() != fd:
            return stream
        return _io.TextIOWrapper(_io.FileIO(fd, "w", closefd=False), encoding=stream.encoding,
                                 errors=stream.errors, line_buffering=stream.line_buffering)
    except (AttributeError, OSError, ValueError):
        return stream


class MultiProcess(Process):
    """A process run in a forked OS process of its own (@multiprocess). The
    channel ends among its arguments are handed to it (the parent's copies of
    them can no longer be used), and so are those it reaches through them
    and through its function: inside lists, tuples, sets and dicts, objects'
    attributes, closures, bound methods and partials; values cross pickled
    (protocol 5); its result comes back pickled. If it dies, the channels it
    held are poisoned and Parallel raises OSProcessError."""

    def _ends(self):
        # (The process itself is not walked into: its arguments and function are.)
        return _walk([self.args, self.kwargs, self.fn], [], set(),
                     lambda x: x if _is_end(x) else None)

    def _channels(self):
        return _walk([self.args, self.kwargs, self.fn], [], set(),
                     lambda x: x._core if isinstance(x, Channel) else None)

    def run(self):
        self.error = None  # (a process object may run again)
        _local.process, outer = self, getattr(_local, "process", None)
        try:
            for stream in (_sys.stdout, _sys.stderr):
                try:
                    stream.flush()
                except (AttributeError, OSError, ValueError):
                    pass
            data = _cspp.run_multiprocess(self, self._ends(), self._channels(),
                                          "%s (%s)" % (self.name, self.id))
            ok, value = _pickle.loads(data)
            if ok:
                self.result = value
            else:
                self.error = value
        except BaseException as e:
            # (Not forked, or it died: what is still the parent's is poisoned;
            # the child's ends, handed over, were poisoned by csp if it held them.)
            self.error = e
            _quietly(lambda e: e.poison(), self._ends())
        finally:
            _local.process = outer

    def _child_outcome(self):
        # In the child: run the body (PyCSP's rules), then (ok, value) pickled.
        _sys.stdout = _fresh_stream(_sys.stdout, 1)
        _sys.stderr = _fresh_stream(_sys.stderr, 2)
        Process.run(self)
        try:
            if self.error is None:
                out = _pickle.dumps((True, self.result), protocol=5)
            else:
                try:  # (the traceback does not pickle: its text does, for _report_spawned)
                    e = self.error
                    e._cspp_traceback = "".join(_traceback.format_exception(type(e), e, e.__traceback__))
                except Exception:
                    pass
                out = _pickle.dumps((False, self.error), protocol=5)
        except Exception as e:
            what = self.error if self.error is not None else self.result
            out = _pickle.dumps((False, RuntimeError(
                "cspp: multiprocess %s: %r could not be pickled to reach its parent (%s)"
                % (self.name, what, e))), protocol=5)
        for stream in (_sys.stdout, _sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        return out


def multiprocess(fn):
    """@multiprocess: like @process, but each process runs in a forked OS
    process on the same channels."""
    return _decorator(MultiProcess)(fn)


def _flatten(parts, out):
    for p in parts:
        if isinstance(p, Process):
            out.append(p)
        elif isinstance(p, (list, tuple)):
            _flatten(p, out)
        else:
            raise TypeError("cspp: Parallel, Sequence and Spawn take processes "
                            "(and lists of them), not %r" % (p,))
    return out


_live_lock = _threading.Lock()
_live = set()  # processes running on threads (Ctrl-C and exit poison their ends)


def _start(procs, join, daemon=True, spawned=False):
    # (spawned: Spawn's, whose failures nobody waits for: _report_spawned.)
    threads = []
    for p in procs:
        if isinstance(p, GreenProcess):
            _cspp.green_start(p.id, lambda p=p: p._green_body(join, spawned))
            continue
        t = _threading.Thread(target=_run_live, args=(p, join, spawned), name=p.id, daemon=daemon)
        threads.append(t)
    for t in threads:
        t.start()
    return threads


def _run_live(p, join, spawned=False):
    with _live_lock:
        _live.add(p)
    try:
        p._thread_body(join, spawned)
    finally:
        with _live_lock:
            _live.discard(p)


def _poison_all(procs):
    for p in procs:
        _quietly(lambda e: e.poison(), p._ends())


def _check(procs):
    deadlock = next((p.error for p in procs if isinstance(p.error, DeadlockError)), None)
    if deadlock is not None:
        raise deadlock
    for p in procs:
        if p.error is not None:
            e = p.error
            if hasattr(e, "add_note") and not isinstance(e, (KeyboardInterrupt, SystemExit)):
                e.add_note("cspp: raised in process '%s' (%s)" % (p.name, p.id))
            raise e


def _main_thread():
    # (The main program: not a green process, which runs on it too.)
    return (_threading.current_thread() is _threading.main_thread()
            and (_greenlet is None or _green_process() is None))


def Parallel(*parts):
    """Parallel(p, q, [r, ...], ...): run them concurrently, each on a thread of
    its own; return their results in order once all have ended."""
    procs = _flatten(parts, [])
    if not procs:
        return []
    join = _cspp.Join(len(procs))
    _start(procs, join)
    try:
        join.wait(_main_thread())
    except BaseException:
        # Ctrl-C: the network is poisoned, so that its processes end (green
        # ones run only while this thread lets them: for a second, here).
        _poison_all(procs)
        if _greenlet is not None:
            _cspp.green_drain(1.0)
        raise
    finally:
        if _greenlet is not None:
            _cspp.green_idle()
    _check(procs)
    return [p.result for p in procs]


def Sequence(*parts):
    """Sequence(p, q, ...): run them one after another; their results in order."""
    results = []
    for p in _flatten(parts, []):
        results.extend(Parallel(p))
    return results


_spawned_green = []  # (join, thread ident) of green processes Spawn started


def _current_process():
    p = _green_process() if _greenlet is not None else None
    return p if p is not None else getattr(_local, "process", None)


def _report_spawned(p):
    # Nobody waits for a spawned process's result, so its failure is printed
    # with its traceback (csp::Spawn logs it; Python prints an uncaught
    # exception of a thread). Ctrl-C and sys.exit are not failures.
    e = p.error
    if e is None or isinstance(e, (KeyboardInterrupt, SystemExit)):
        return
    try:
        # (A multiprocess's error came from its child, pickled, without its
        # traceback: the child's, as text, rides along: _child_outcome.)
        text = getattr(e, "_cspp_traceback", None) or "".join(
            _traceback.format_exception(type(e), e, e.__traceback__))
        print("cspp: spawned process %s failed:\n%s" % (p.id, text), end="", file=_sys.stderr)
    except Exception:  # (no stderr left: at exit)
        pass


def Spawn(*parts):
    """Spawn(p, ...): start them and return at once. Spawned from a process,
    they are joined when that process ends; from the main program, its exit
    waits for them (their threads are not daemons; green ones run while the
    main program waits in csp, and at its exit). A spawned process that
    fails prints its error and traceback on stderr: nobody waits for it."""
    procs = _flatten(parts, [])
    if procs:
        join = _cspp.Join(len(procs))
        _start(procs, join, daemon=False, spawned=True)
        parent = _current_process()
        if parent is not None:
            parent._spawned.append(join)
        if any(isinstance(p, GreenProcess) for p in procs):
            _spawned_green.append((join, _threading.get_ident()))


def shutdown():
    """Harmless, never needed (PyCSP's name)."""


def io(fn):
    """@io: a blocking call. Each Python process has an OS thread of its own,
    so it simply blocks that one process (PyCSP's name). (cspp.greenlets's
    @io runs it on a thread of its own.)"""
    return fn


def _green_io(fn):
    """@io for green processes: the call runs on a thread of its own while
    the calling green process waits in csp, so the thread's other green
    processes run meanwhile (PyCSP's greenlets variant does the same)."""
    import functools

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _greenlet is None or _green_process() is None:
            return fn(*args, **kwargs)
        out = {}
        join = _cspp.Join(1)

        def body():
            try:
                out["result"] = fn(*args, **kwargs)
            except BaseException as e:
                out["error"] = e
            finally:
                join.arrive()

        _threading.Thread(target=body, name="io " + getattr(fn, "__name__", "call"), daemon=True).start()
        join.wait(False)
        if "error" in out:
            raise out["error"]
        return out.get("result")
    return call


# ---- alternation ------------------------------------------------------------------

_INPUT, _OUTPUT, _SKIP, _TIMEOUT = 0, 1, 2, 3


class Skip:
    """A guard that is always ready."""

    def __repr__(self):
        return "<Skip>"


class Timeout:
    """Timeout(seconds): a guard ready once `seconds` have passed since the
    choice began."""

    def __init__(self, seconds):
        self.seconds = float(seconds)

    def __repr__(self):
        return "<Timeout %gs>" % self.seconds


class Choice:
    """What @choice makes: an action with its arguments; on input it also gets
    channel_input=the value read."""

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def invoke_on_input(self, value):
        kwargs = dict(self.kwargs)
        kwargs["channel_input"] = value
        return self.fn(*self.args, **kwargs)

    def invoke_on_output(self):
        return self.fn(*self.args, **self.kwargs)


def choice(fn):
    """@choice: an action factory for guards; calling it binds arguments."""
    def make(*args, **kwargs):
        return Choice(fn, args, kwargs)
    make.__name__ = getattr(fn, "__name__", "choice")
    return make


def _spec(guard):
    # PyCSP's forms of a guard (a key of Alternation's dicts): an input end,
    # (output end, value), Skip() or SkipGuard(), Timeout(seconds) or
    # TimeoutGuard(seconds).
    if isinstance(guard, ChannelEndRead):
        return (_INPUT, guard, None, 0.0)
    if isinstance(guard, tuple) and len(guard) == 2 and isinstance(guard[0], ChannelEndWrite):
        return (_OUTPUT, guard[0], guard[1], 0.0)
    if isinstance(guard, (Skip, SkipGuard)):
        return (_SKIP, None, None, 0.0)
    if isinstance(guard, (Timeout, TimeoutGuard)):
        return (_TIMEOUT, None, None, guard.seconds)
    raise TypeError("cspp: not a guard: %r (an input end, (output end, value), Skip() or "
                    "Timeout(seconds))" % (guard,))


class Alternation:
    """Alternation([{guard: action}, ...], ensurePriority=True): PyCSP's
    choice. A guard is an input end, (output end, value), Skip() or
    Timeout(seconds); an action is None, a callable (given
    channel_input=value on input), a @choice, or a string of Python code,
    run as PyCSP runs it: in the namespace of the frame that called
    execute() (set_execute_frame(-n): n frames up), with channel_input set
    there on input.

    execute() chooses (the first ready guard in order; with
    ensurePriority=False any ready guard, at random), communicates, runs the
    action and returns (guard, value read or None); select() does the same
    without running the action. pri_/fair_ forms choose by priority or fairly.
    """

    def __init__(self, guards, ensurePriority=True):
        self._order = 0 if ensurePriority else 2
        self._execute_frame = -1
        self.guards = []
        for item in guards:
            if isinstance(item, dict):
                for g, action in item.items():
                    self.guards.append((g, action))
            elif isinstance(item, _Guard):
                self.guards.append(item.g)
            elif isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], ChannelEndWrite):
                self.guards.append(((item[0], item[1]), item[2]))  # (cout, msg, action)
            elif isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], ChannelEndWrite):
                self.guards.append(item)
            else:
                self.guards.append((item, None))
        self._specs = [_spec(g) for g, _ in self.guards]
        # Fair and random choice are among the channel guards; skip and
        # timeout guards come after them (PyCSP's rule: a Skip never
        # overtakes a ready channel).
        self._channel_guards = [i for i, sp in enumerate(self._specs) if sp[0] in (_INPUT, _OUTPUT)]
        self._others = [i for i, sp in enumerate(self._specs) if sp[0] not in (_INPUT, _OUTPUT)]
        self._next = 0

    def _choose(self, order):
        # order: 0 by priority, 1 round robin, 2 at random.
        if order == 0 or not self._channel_guards:
            i, value = _cspp.choose(self._specs, 0, 0)
        else:
            chans = self._channel_guards
            if order == 1:
                k = self._next % len(chans)
                perm = chans[k:] + chans[:k] + self._others
            else:
                perm = _random.sample(chans, len(chans)) + self._others
            j, value = _cspp.choose([self._specs[x] for x in perm], 0, 0)
            i = perm[j]
            if order == 1 and i in chans:
                self._next = chans.index(i) + 1
        g = self.guards[i][0]
        return i, (g[0] if isinstance(g, tuple) else g), value

    def set_execute_frame(self, steps):
        """Where a string action runs: steps (negative) frames up from the
        call of execute(); -1, its caller, by default (PyCSP's name)."""
        if not isinstance(steps, int) or steps >= 0:
            raise ValueError("cspp: set_execute_frame takes a negative number of frames, not %r" % (steps,))
        self._execute_frame = steps

    def _act(self, i, value):
        action = self.guards[i][1]
        is_input = self._specs[i][0] == _INPUT
        if action is None:
            return
        if isinstance(action, str):
            # (Frames: 0 this one, 1 _run, 2 execute or its pri_/fair_ form, then its callers.)
            frame = _sys._getframe(2 - self._execute_frame)
            code = compile(action, "%s line %d in string" % (frame.f_code.co_filename, frame.f_lineno), "exec")
            names = frame.f_locals
            if is_input:
                names["channel_input"] = value
            exec(code, frame.f_globals, names)
            return
        if isinstance(action, Choice):
            if is_input:
                action.invoke_on_input(value)
            else:
                action.invoke_on_output()
        elif callable(action):
            if is_input:
                action(channel_input=value)
            else:
                action()
        else:
            raise TypeError("cspp: a guard's action must be callable, a @choice or a string of code, not %r"
                            % (action,))

    def _run(self, order, act):
        i, g, value = self._choose(order)
        if act:
            self._act(i, value)
        return g, value

    def execute(self):
        return self._run(self._order, True)

    def pri_execute(self):
        return self._run(0, True)

    def fair_execute(self):
        return self._run(1, True)

    def select(self):
        return self._run(self._order, False)

    def pri_select(self):
        return self._run(0, False)

    def fair_select(self):
        return self._run(1, False)


class _Guard:
    def __init__(self, key, action):
        self.g = (key, action)  # (a pair, not PyCSP's dict: an output value need not be hashable)


class InputGuard(_Guard):
    """InputGuard(cin, action=None)."""

    def __init__(self, cin, action=None):
        if not isinstance(cin, ChannelEndRead):
            raise TypeError("cspp: InputGuard takes a reader end (+c), not %r" % (cin,))
        super().__init__(cin, action)


class OutputGuard(_Guard):
    """OutputGuard(cout, msg, action=None)."""

    def __init__(self, cout, msg, action=None):
        if not isinstance(cout, ChannelEndWrite):
            raise TypeError("cspp: OutputGuard takes a writer end (-c), not %r" % (cout,))
        super().__init__((cout, msg), action)


class SkipGuard(_Guard, Skip):
    """SkipGuard(action=None). (The Select functions return this very object
    when it fires; it may also be a key of Alternation's dicts.)"""

    def __init__(self, action=None):
        super().__init__(self, action)


class TimeoutGuard(_Guard, Timeout):
    """TimeoutGuard(seconds, action=None)."""

    def __init__(self, seconds, action=None):
        self.seconds = float(seconds)
        super().__init__(self, action)


def _alternation_of(guards):
    items = []
    for g in guards:
        if isinstance(g, (list, tuple)) and not isinstance(g, _Guard):
            items.extend(_alternation_of(g).guards)  # (a list of guards, as PyCSP allows)
            continue
        if not isinstance(g, _Guard):
            raise TypeError("cspp: the Select functions take InputGuard, OutputGuard, SkipGuard "
                            "and TimeoutGuard, not %r" % (g,))
        items.append(g.g)
    return Alternation(items)


def AltSelect(*guards):
    """AltSelect(G1, G2, ...): choose a ready guard, communicate, run its
    action; returns (guard's end or Skip/Timeout, value read or None)."""
    a = _alternation_of(guards)
    a.set_execute_frame(-2)  # (a string action runs in the caller's frame)
    return a.execute()


def PriSelect(*guards):
    """PriSelect: AltSelect choosing the first ready guard in order."""
    a = _alternation_of(guards)
    a.set_execute_frame(-2)
    return a.execute()


def FairSelect(*guards):
    """FairSelect: AltSelect choosing uniformly at random among the ready guards."""
    return _alternation_of(guards)._run(2, True)  # (a string action: in the caller's frame, as from execute)


# ---- exit -----------------------------------------------------------------------------

def _at_exit():
    # Processes still running on their daemon threads (Parallel's, after
    # Ctrl-C; atexit runs once Spawn's, not daemons, have ended) are
    # poisoned and given a moment to end before the interpreter goes.
    # Green processes that the main thread spawned run to their end first
    # (a Join wait: should they never end, the deadlock detector says so).
    me = _threading.get_ident()
    for join, ident in list(_spawned_green):
        if ident == me:
            try:
                join.wait(True)
            except BaseException as e:  # (a deadlock, a second Ctrl-C)
                print("cspp: green processes spawned by the main program: %r" % (e,), file=_sys.stderr)
                break
    _spawned_green.clear()
    try:
        with _live_lock:
            procs = list(_live)
        if procs:
            _poison_all(procs)
            deadline = _time.monotonic() + 1.0
            while _time.monotonic() < deadline:
                with _live_lock:
                    if not _live:
                        break
                _time.sleep(0.01)
    finally:
        # From now on a thread still in csp stays there (see object.hpp's
        # g_exiting): coming back into a finalizing interpreter would abort.
        _cspp._exiting()


def _after_fork_in_child():
    # (A lock another thread held at the fork stays held in the child.)
    global _live_lock, _channel_count_lock
    _live_lock = _threading.Lock()
    _channel_count_lock = _threading.Lock()
    _live.clear()
    _spawned_green.clear()


_os.register_at_fork(after_in_child=_after_fork_in_child)

import atexit as _atexit  # noqa: E402

_atexit.register(_at_exit)
