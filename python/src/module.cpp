// module.cpp: cspp._cspp, the C++ half of cspp (the Python half: cspp/).
//
// What it offers the Python half: Channel (of Python objects, csp::Channel
// <Object>) and its ends ChannelEndRead / ChannelEndWrite, called to read and
// write; choose, one choice over guards (the engine of csp's alternation);
// Join, how Parallel waits for its processes (a csp join: the deadlock
// detector sees the waiting thread, and Ctrl-C interrupts it); name_thread;
// the channel exceptions. Python processes run on threads of their own
// (cspp/__init__.py starts them); they park through csp's plain-thread path,
// with the GIL released.
#include "cspp/object.hpp"
#include "cspp/ports.hpp"

#include "channels/alternation.hpp"
#include "csp/errors.hpp"
#include "csp/multiprocess.hpp"
#include "runtime/arena.hpp"
#include "runtime/runtime.hpp"

#include <pybind11/pybind11.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace cspp {

namespace runtime = csp::runtime;

std::string python_error_text() {
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    PyErr_NormalizeException(&type, &value, &trace);
    std::string text = "unknown Python error";
    if (value) {
        PyObject* s = PyObject_Str(value);
        const char* name = type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "Exception";
        if (s) {
            const char* u = PyUnicode_AsUTF8(s);
            text = std::string(name) + ": " + (u ? u : "");
            Py_DECREF(s);
        }
        PyErr_Clear();
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(trace);
    return text;
}

namespace {
PyObject* g_dumps = nullptr;  // pickle.dumps, pickle.loads (kept for the module's life)
PyObject* g_loads = nullptr;
}  // namespace

std::string pickle(PyObject* o) {
    PyObject* b = PyObject_CallFunction(g_dumps, "Oi", o, 5);
    if (!b) throw std::runtime_error("cspp: a value could not be pickled to cross OS processes: " + python_error_text());
    char* data;
    Py_ssize_t size;
    PyBytes_AsStringAndSize(b, &data, &size);
    std::string bytes(data, static_cast<std::size_t>(size));
    Py_DECREF(b);
    return bytes;
}

PyObject* unpickle(const std::string& bytes) {
    PyObject* b = PyBytes_FromStringAndSize(bytes.data(), static_cast<Py_ssize_t>(bytes.size()));
    PyObject* o = b ? PyObject_CallFunctionObjArgs(g_loads, b, nullptr) : nullptr;
    Py_XDECREF(b);
    if (!o) throw std::runtime_error("cspp: a value from another OS process could not be unpickled: " + python_error_text());
    return o;
}

namespace {

// ---- Ctrl-C ---------------------------------------------------------------
//
// A main thread waiting in a Join sleeps in csp (so that the deadlock
// detector sees it). SIGINT reaches it through a chained handler: Python's
// own handler runs (it notes the signal for PyErr_CheckSignals), then a byte
// on an eventfd wakes a watcher thread, which interrupts the main thread's
// Join; the main thread, back with the GIL, runs PyErr_CheckSignals, which
// raises KeyboardInterrupt (cspp/__init__.py then poisons the network).

int g_sigint_fd = -1;
pid_t g_watcher_pid = 0;       // the OS process whose watcher thread reads g_sigint_fd
struct sigaction g_chained{};  // the handler found before ours (Python's)
std::atomic<std::uint64_t> g_sigints{0};  // SIGINTs seen (a main thread not yet parked looks)
std::mutex g_main_join_lock;
runtime::Join* g_main_join = nullptr;  // under g_main_join_lock
// A green process ended by KeyboardInterrupt (Python's SIGINT handler ran in
// its greenlet): the main thread's Parallel raises it (green_interrupted).
std::atomic<bool> g_green_ki{false};

// check_signals: a pending signal's handler runs (it may raise), and a
// KeyboardInterrupt a green process took is raised here.
void check_signals() {
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (g_green_ki.exchange(false, std::memory_order_acq_rel)) {
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        throw py::error_already_set();
    }
}

void green_interrupted() {
    g_green_ki.store(true, std::memory_order_release);
    g_sigints.fetch_add(1, std::memory_order_seq_cst);
    std::lock_guard<std::mutex> hold(g_main_join_lock);
    if (g_main_join) g_main_join->interrupt();
}

// The main thread, whose handler does the work: CPython 3.11 notes a
// signal for its eval loop only when its handler runs on the main thread
// (the eval breaker is computed by the thread that takes the signal), so a
// main thread that runs Python code and never calls into csp (a green
// process that computes) would not see one taken by another thread.
pthread_t g_main_pthread{};
std::atomic<bool> g_main_known{false};

void on_sigint(int sig, siginfo_t* info, void* ctx) {
    const int saved = errno;
    if (g_main_known.load(std::memory_order_acquire) && !pthread_equal(pthread_self(), g_main_pthread)) {
        pthread_kill(g_main_pthread, sig);  // (async-signal-safe)
        errno = saved;
        return;
    }
    if (g_chained.sa_flags & SA_SIGINFO) {
        if (g_chained.sa_sigaction) g_chained.sa_sigaction(sig, info, ctx);
    } else if (g_chained.sa_handler != SIG_DFL && g_chained.sa_handler != SIG_IGN && g_chained.sa_handler) {
        g_chained.sa_handler(sig);
    }
    g_sigints.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t one = 1;
    if (g_sigint_fd >= 0) (void)!write(g_sigint_fd, &one, sizeof one);
    errno = saved;
}

void watch_sigint() {
    runtime::ignore_this_thread();
    for (;;) {
        std::uint64_t n;
        if (read(g_sigint_fd, &n, sizeof n) != sizeof n) {
            if (errno == EINTR) continue;
            return;
        }
        std::lock_guard<std::mutex> hold(g_main_join_lock);
        if (g_main_join) g_main_join->interrupt();
    }
}

// chain_sigint: our handler in front of whatever handles SIGINT now, unless
// it is ours already (Python's signal.signal replaces it: then again).
void chain_sigint() {
    // (Once per OS process: a forked child has no watcher thread, and the
    // parent's eventfd would wake the parent's.)
    if (g_watcher_pid != getpid()) {
        g_watcher_pid = getpid();
        g_sigint_fd = eventfd(0, EFD_CLOEXEC);
        if (g_sigint_fd >= 0) std::thread(watch_sigint).detach();
    }
    if (g_sigint_fd < 0) return;
    struct sigaction now{};
    if (sigaction(SIGINT, nullptr, &now) != 0) return;
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sigint) return;
    if (!(now.sa_flags & SA_SIGINFO) && (now.sa_handler == SIG_DFL || now.sa_handler == SIG_IGN)) return;
    g_chained = now;
    g_main_pthread = pthread_self();  // (join_wait's main thread)
    g_main_known.store(true, std::memory_order_release);
    struct sigaction ours{};
    ours.sa_sigaction = on_sigint;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    sigaction(SIGINT, &ours, nullptr);
}

// join_wait: wait for the join's processes; from the main thread, answer a
// pending signal (Python's handler may raise KeyboardInterrupt).
void join_wait(runtime::Join& join, bool main_thread) {
    if (!main_thread) {
        without_gil([&] { (void)join.wait(); });
        return;
    }
    chain_sigint();
    // (A green process's KeyboardInterrupt from before this Parallel was
    // another's: the processes of this one have not run yet.)
    g_green_ki.store(false, std::memory_order_relaxed);
    // A SIGINT before the join is published is seen in g_sigints (the wait
    // is not begun); one after it, by the watcher's interrupt, which sticks
    // until the wait begins.
    std::uint64_t seen = g_sigints.load(std::memory_order_seq_cst);
    check_signals();
    for (;;) {
        bool all = false;
        without_gil([&] {
            {
                std::lock_guard<std::mutex> hold(g_main_join_lock);
                g_main_join = &join;
            }
            if (g_sigints.load(std::memory_order_seq_cst) == seen) all = join.wait();
            std::lock_guard<std::mutex> hold(g_main_join_lock);
            g_main_join = nullptr;
        });
        seen = g_sigints.load(std::memory_order_seq_cst);
        check_signals();
        if (all) return;
    }
}

// ---- choice -----------------------------------------------------------------

enum GuardKind { kInput = 0, kOutput = 1, kSkip = 2, kTimeout = 3 };

// choose(specs, order, first): one choice. specs: (kind, end, value,
// seconds) per guard; order 0 priority, 1 round robin from `first`, 2 random.
// Returns (index, value read or None).
py::tuple choose(const py::list& specs, int order, std::size_t first) {
    const std::size_t n = specs.size();
    if (n == 0) throw py::value_error("cspp: a choice needs at least one guard");
    std::vector<channels::Guard> guards(n);
    std::vector<std::unique_ptr<Held>> held(n);
    std::vector<std::unique_ptr<std::max_align_t[]>> storage(n);
    std::vector<ReadEnd*> inputs(n, nullptr);
    const auto start = runtime::now();
    for (std::size_t i = 0; i < n; ++i) {
        const py::tuple spec = specs[i].cast<py::tuple>();
        const int kind = spec[0].cast<int>();
        channels::Guard& g = guards[i];
        g = channels::Guard{channels::Guard::Kind::Skip, true, nullptr, nullptr, {}};
        switch (kind) {
            case kInput: {
                ReadEnd* e = spec[1].cast<ReadEnd*>();
                g.kind = channels::Guard::Kind::Input;
                g.core = e->usable_core();
                storage[i].reset(new std::max_align_t[(e->wire_size() + sizeof(std::max_align_t) - 1) /
                                                      sizeof(std::max_align_t)]);
                g.slot = storage[i].get();
                inputs[i] = e;
                break;
            }
            case kOutput: {
                WriteEnd* e = spec[1].cast<WriteEnd*>();
                g.kind = channels::Guard::Kind::Output;
                g.core = e->usable_core();
                held[i] = e->hold(spec[2]);
                g.slot = held[i]->slot();
                break;
            }
            case kSkip: break;
            case kTimeout: {
                g.kind = channels::Guard::Kind::Timeout;
                const double seconds = spec[3].cast<double>();
                g.deadline = start + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::duration<double>(seconds > 0 ? seconds : 0));
                break;
            }
            default: throw py::value_error("cspp: unknown guard kind");
        }
    }
    channels::Order o{channels::Order::Kind::Priority, 0};
    if (order == 1) o = {channels::Order::Kind::RoundRobin, n ? first % n : 0};
    if (order == 2 || (order == 0 && runtime::simulating())) o = {channels::Order::Kind::Random, 0};
    channels::Choice c = without_gil([&] { return channels::choose(guards.data(), n, o); });
    if (c.outcome != channels::Outcome::Done) csp::detail::throw_choice(c, guards.data(), n);
    py::object value = py::none();
    if (inputs[c.index]) value = inputs[c.index]->take(storage[c.index].get());
    return py::make_tuple(c.index, value);
}

// ---- @multiprocess ----------------------------------------------------------------
//
// csp's own multiprocess machinery (csp/multiprocess.cpp: run_forked) forks
// on an io helper thread. Around the fork that thread holds the GIL and runs
// CPython's fork protocol (PyOS_BeforeFork; PyOS_AfterFork_Parent in the
// parent, PyOS_AfterFork_Child in the child), so the child's interpreter is
// whole: no other thread was inside it. Right after the fork the parent
// hands the process's channel ends to the child (hand_off, listed by
// t_forgetting: the channels are marked as crossing OS processes, values on
// them are pickled from then on, and they are poisoned if the child dies
// holding them). The child, still holding the GIL, runs the process's
// _child_outcome() (cspp/__init__.py), which runs the body with PyCSP's
// rules and returns (ok, result or exception) pickled; that goes back in the
// child's record.

struct PyFork {
    py::object process;  // the MultiProcess; its _child_outcome runs in the child
    // The Python objects of the ends and channels handed over: kept alive
    // (in the child too, whose body may drop them) while their C++ halves
    // are used below.
    py::list kept;
    std::vector<ReadEnd*> readers;
    std::vector<WriteEnd*> writers;
    std::vector<ChannelBase*> channels;
    PyGILState_STATE gil{};
};

void fork_before(void* arg) noexcept {
    auto* f = static_cast<PyFork*>(arg);
    f->gil = PyGILState_Ensure();
    PyOS_BeforeFork();
}

void fork_after(void* arg) noexcept {
    auto* f = static_cast<PyFork*>(arg);
    PyOS_AfterFork_Parent();
    PyGILState_Release(f->gil);
}

void fork_forget(void* arg) noexcept {
    auto* f = static_cast<PyFork*>(arg);
    for (ReadEnd* e : f->readers) e->hand_off();
    for (WriteEnd* e : f->writers) e->hand_off();
    for (ChannelBase* c : f->channels) c->list_for_child();
}

void fork_child(void* arg, csp::detail::ChildRecord* rec) noexcept {
    auto* f = static_cast<PyFork*>(arg);
    PyOS_AfterFork_Child();  // (the GIL is this thread's, from fork_before)
    // What the fork copied in the state of another thread: the lock may have
    // been held; no watcher thread here (chain_sigint starts one).
    ::new (&g_main_join_lock) std::mutex;
    g_main_join = nullptr;
    // Its one thread, this one, is its main thread (CPython's too, since
    // PyOS_AfterFork_Child): signals go there, not to the parent's; the
    // parent's eventfd and watcher are not its own (chain_sigint makes them).
    g_main_pthread = pthread_self();
    g_main_known.store(true, std::memory_order_release);
    g_sigint_fd = -1;
    g_watcher_pid = 0;
    g_green_ki.store(false, std::memory_order_relaxed);
    // The ends handed to it are the child's now (see Owned).
    for (ReadEnd* e : f->readers) e->adopt();
    for (WriteEnd* e : f->writers) e->adopt();
    // (Copied before the body runs: f is on the stack of a parent's thread,
    // which the child's glibc reclaims for the threads the child starts.)
    const std::vector<ReadEnd*> readers = f->readers;
    const std::vector<WriteEnd*> writers = f->writers;
    const std::vector<ChannelBase*> chans = f->channels;
    py::object process = f->process;
    py::object kept = f->kept;
    std::string out;
    bool got = false;
    try {
        py::bytes b = process.attr("_child_outcome")();
        out = std::string(b);
        got = true;
    } catch (py::error_already_set& e) {
        csp::detail::record_failure(rec, std::make_exception_ptr(csp::RemoteError("Python exception", e.what())));
    } catch (...) {
        csp::detail::record_failure(rec, std::current_exception());
    }
    // What it was handed lets go now: it _exits next, destroying nothing.
    for (ReadEnd* e : readers) e->let_go();
    for (WriteEnd* e : writers) e->let_go();
    for (ChannelBase* c : chans) c->release_in_child();
    if (!got) return;
    channels::Parcel* p = nullptr;
    try {
        p = channels::parcel_new(out.size());
        std::memcpy(p->data(), out.data(), out.size());
    } catch (...) {
        csp::detail::record_failure(rec, std::current_exception());
        return;
    }
    rec->result = p;
    rec->state = csp::detail::ChildRecord::kResult;
}

// run_multiprocess(process, ends, channels, name): run the process in a
// forked OS process; returns what its _child_outcome returned (bytes).
py::bytes run_multiprocess(py::object process, const py::list& ends, const py::list& chans, const std::string& name) {
    PyFork f;
    f.process = process;
    // Only ends of this OS process, not handed to another child already
    // (one inherited from a parent is that parent's to hand; two forks that
    // reach one end: the first takes it). Under the GIL, so once each.
    for (py::handle e : ends) {
        if (py::isinstance<ReadEnd>(e)) {
            auto* r = e.cast<ReadEnd*>();
            if (!r->mine() || r->claimed) continue;
            r->claimed = true;
            f.readers.push_back(r);
        } else {
            auto* w = e.cast<WriteEnd*>();
            if (!w->mine() || w->claimed) continue;
            w->claimed = true;
            f.writers.push_back(w);
        }
        f.kept.append(e);
    }
    for (py::handle c : chans) {
        auto* ch = c.cast<ChannelBase*>();
        if (!ch->mine()) continue;  // (a parent's: its reference is not ours to give)
        f.channels.push_back(ch);
        f.kept.append(c);
    }
    csp::detail::ForkSpec spec{&name, &fork_child, &fork_forget, &f, &fork_before, &fork_after};
    csp::detail::ChildRecord* rec = without_gil([&] { return csp::detail::run_forked(spec); });
    struct Free {
        csp::detail::ChildRecord* r;
        ~Free() { csp::detail::free_record(r); }
    } free{rec};
    if (!rec->result) throw std::runtime_error("cspp: multiprocess '" + name + "' left no result");
    return py::bytes(reinterpret_cast<const char*>(rec->result->data()), rec->result->size);
}

}  // namespace
}  // namespace cspp

namespace cspp {
void raise_green_interrupt() { green_interrupted(); }
#ifdef CSPP_GREENLETS
void define_green(py::module_& m);  // green.cpp
#endif
}  // namespace cspp

PYBIND11_MODULE(_cspp, m) {
#ifdef CSPP_GREENLETS
    cspp::define_green(m);
#else
    m.attr("have_greenlets") = false;
#endif
    namespace py = pybind11;
    using namespace cspp;
    m.doc() = "csp's channels and processes for Python (the C++ half of cspp)";
    // (A forked child has none of the threads its parent counted there.)
    pthread_atfork(nullptr, nullptr, [] { g_coming_back.store(0, std::memory_order_relaxed); });

    {
        py::module_ pickle_module = py::module_::import("pickle");
        g_dumps = py::object(pickle_module.attr("dumps")).release().ptr();
        g_loads = py::object(pickle_module.attr("loads")).release().ptr();
    }
    // (The importing thread, main, is csp's "main" in reports.)
    (void)csp::runtime::current();

    static py::exception<csp::ChannelPoisonException> poison_exc(m, "ChannelPoisonException");
    static py::exception<csp::ChannelRetireException> retire_exc(m, "ChannelRetireException");
    static py::exception<csp::DeadlockError> deadlock_exc(m, "DeadlockError");
    static py::exception<csp::UsageError> usage_exc(m, "UsageError", PyExc_ValueError);
    static py::exception<csp::OSProcessError> os_exc(m, "OSProcessError");
    static py::exception<csp::RemoteError> remote_exc(m, "RemoteError");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const csp::ChannelPoisonException& e) {
            poison_exc(e.what());
        } catch (const csp::ChannelRetireException& e) {
            retire_exc(e.what());
        } catch (const csp::DeadlockError& e) {
            deadlock_exc(e.what());
        } catch (const csp::UsageError& e) {
            usage_exc(e.what());
        } catch (const csp::OSProcessError& e) {
            os_exc(e.what());
        } catch (const csp::RemoteError& e) {
            remote_exc((e.type_name() + ": " + e.what()).c_str());
        }
    });

    py::class_<ReadEnd>(m, "ChannelEndRead")
        .def("__call__", &ReadEnd::read, "read the next value")
        .def("read", &ReadEnd::read)
        .def("retire", &ReadEnd::retire)
        .def("poison", &ReadEnd::poison)
        .def("_another", &ReadEnd::another)
        .def("isReader", [](const ReadEnd&) { return true; })
        .def("isWriter", [](const ReadEnd&) { return false; })
        .def_property_readonly("name", &ReadEnd::name)
        .def_property("channel", [](const ReadEnd& e) { return e.channel.get(); },
                      [](ReadEnd& e, const py::object& c) { e.channel.set(c); })
        .def("__repr__", [](const ReadEnd& e) { return "<ChannelEndRead of '" + e.name() + "'>"; });

    py::class_<WriteEnd>(m, "ChannelEndWrite")
        .def("__call__", &WriteEnd::write, "write a value; returns when it is taken (or buffered)")
        .def("write", &WriteEnd::write)
        .def("retire", &WriteEnd::retire)
        .def("poison", &WriteEnd::poison)
        .def("_another", &WriteEnd::another)
        .def("isReader", [](const WriteEnd&) { return false; })
        .def("isWriter", [](const WriteEnd&) { return true; })
        .def_property_readonly("name", &WriteEnd::name)
        .def_property("channel", [](const WriteEnd& e) { return e.channel.get(); },
                      [](WriteEnd& e, const py::object& c) { e.channel.set(c); })
        .def("__repr__", [](const WriteEnd& e) { return "<ChannelEndWrite of '" + e.name() + "'>"; });

    py::class_<ChannelBase, std::shared_ptr<ChannelBase>>(m, "ChannelBase")
        .def("_reader", &ChannelBase::reader)
        .def("_writer", &ChannelBase::writer)
        .def("poison", &ChannelBase::poison)
        .def_property_readonly("name", &ChannelBase::name)
        .def_property_readonly("capacity", &ChannelBase::capacity);

    m.def("object_channel", [](const std::string& name, long long buffer) -> std::shared_ptr<ChannelBase> {
        const csp::Buffer b = csp::buffer(buffer);
        return without_gil([&] { return std::make_shared<Typed<Object>>(csp::Channel<Object>(name, b)); });
    }, py::arg("name"), py::arg("buffer") = 0, "a channel of Python objects");

    m.def("choose", &choose, py::arg("specs"), py::arg("order") = 0, py::arg("first") = 0);

    py::class_<csp::runtime::Join, std::shared_ptr<csp::runtime::Join>>(m, "Join")
        .def(py::init<std::int64_t>())
        .def("arrive", [](csp::runtime::Join& j) {
            NoGil nogil;
            j.arrive();
        })
        .def("wait", &join_wait, py::arg("main_thread") = false);

    m.def("run_multiprocess", &run_multiprocess, py::arg("process"), py::arg("ends"), py::arg("channels"),
          py::arg("name"));

    m.def("green_interrupted", &green_interrupted,
          "a green process ended by KeyboardInterrupt: the main thread's Parallel raises it");

    m.def("_exiting", [] {
        t_exiting_thread = true;
        g_exiting.store(true, std::memory_order_seq_cst);
        wait_for_those_coming_back();
    },
          "the program exits: no thread comes back into Python from csp from now on");

    m.def("name_thread", [](const std::string& name) { return csp::runtime::name_this_thread(name); },
          "name the calling thread, not yet known to csp, in csp's reports");
    m.def("current_name", [] { return std::string(csp::runtime::current_name()); });
    m.def("_arena_in_use", [] { return csp::runtime::arena_in_use(); },
          "bytes of csp's shared arena in use (tests: nothing leaks across forks)");
}
