// object.hpp: a Python object as a value of a csp channel.
//
// cspp's own channels are csp::Channel<cspp::Object>: within an OS process a
// write moves the reference to the reader (PyCSP's behaviour: the reader gets
// the very object written; no copy, no pickling); across OS processes the
// object is pickled (protocol 5) by the writer and unpickled by the reader,
// each on its own thread, through csp's serializer hook (cereal's save/load).
//
// The GIL: a channel operation is always called with the GIL released (a
// thread that holds it never waits for a channel lock), and an Object takes
// the GIL itself wherever it touches the interpreter: when it is copied,
// destroyed (also when poison, retire or a dropping buffer discards it, on
// whatever thread that happens), pickled or unpickled. Once the interpreter
// is finalizing a reference is let go of without a decref (nothing may run
// Python then).
#pragma once

#include <Python.h>

#include <cereal/types/string.hpp>

#include <atomic>
#include <stdexcept>
#include <unistd.h>
#include <string>
#include <utility>

namespace cspp {

// g_exiting: set by cspp's atexit hook, before the interpreter finalizes
// (by then only daemon threads are left: Parallel's process threads). From
// then on no thread comes back into Python: one that would (a process
// thread woken in csp at exit) stops where it is instead, for CPython 3.11
// ends a thread that takes the GIL while finalizing with pthread_exit, whose
// forced unwind through C++ frames aborts the process; and a reference is
// let go of without a decref.
// (The thread that exits, which runs the atexit hook and then finalizes,
// goes on as before: t_exiting_thread.)
inline std::atomic<bool> g_exiting{false};
inline thread_local bool t_exiting_thread = false;

// kept_out: the calling thread may not come back into Python (see above).
inline bool kept_out() noexcept { return g_exiting.load(std::memory_order_seq_cst) && !t_exiting_thread; }

// g_coming_back: threads between their look at kept_out() and having the
// GIL (ComingBack). A look and g_exiting's store are both seq_cst, so either
// the thread sees g_exiting and stops, or the exiting thread sees it counted
// here and lets the GIL go until it is through (wait_for_those_coming_back):
// no thread then asks for the GIL while the interpreter finalizes.
inline std::atomic<int> g_coming_back{0};

// interpreter_alive: Python code may still run (not finalizing).
inline bool interpreter_alive() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsInitialized() && !Py_IsFinalizing();
#else
    return Py_IsInitialized() && !_Py_IsFinalizing();
#endif
}

// stop_here_for_good: a thread that may not come back into Python (see
// g_exiting) waits for the OS process to end.
[[noreturn]] inline void stop_here_for_good() noexcept {
    for (;;) pause();
}

// ComingBack: the scope of a thread's taking the GIL back (or for the first
// time); a thread that may not come back into Python stops here for good.
// (The exiting thread may: it finalizes the interpreter, and the objects it
// destroys then may let the GIL go and take it back.)
class ComingBack {
public:
    ComingBack() noexcept {
        g_coming_back.fetch_add(1, std::memory_order_seq_cst);
        if (kept_out()) {
            g_coming_back.fetch_sub(1, std::memory_order_seq_cst);
            stop_here_for_good();
        }
    }
    ~ComingBack() { g_coming_back.fetch_sub(1, std::memory_order_seq_cst); }
    ComingBack(const ComingBack&) = delete;
    ComingBack& operator=(const ComingBack&) = delete;
};

// wait_for_those_coming_back: for the exiting thread, which holds the GIL,
// once g_exiting is set: the threads already on their way back into Python
// get there (the GIL let go meanwhile), for at most 5 s.
inline void wait_for_those_coming_back() noexcept {
    if (g_coming_back.load(std::memory_order_seq_cst) == 0) return;
    PyThreadState* state = PyEval_SaveThread();
    for (int i = 0; i < 50000 && g_coming_back.load(std::memory_order_seq_cst) != 0; ++i) usleep(100);
    PyEval_RestoreThread(state);
}

// Gil: holds the GIL for a scope, on any thread (PyGILState_Ensure).
//
// Why ComingBack: CPython 3.11 ends a thread that asks for the GIL while the
// interpreter finalizes with pthread_exit, whose forced unwind through a
// noexcept frame calls std::terminate ("terminate called without an active
// exception": seen once at the exit of the test run of test_processes.py,
// whose last test ends 200 thread processes, each taking the GIL back after
// Join::arrive, and cspp's atexit hook waits for them at most 1 s). A thread
// that had looked at kept_out() before g_exiting was set could still be
// waiting for the GIL then. Should one all the same (a program that
// finalizes without cspp's atexit hook), neither taking the GIL here nor
// taking it back in ~NoGil is noexcept, so that the unwind can pass these
// frames (pybind11's dispatcher rethrows it); through the noexcept callers
// (Object::drop, a port's let_go) or an exception already in flight it
// still aborts.
class Gil {
public:
    Gil() : state_(take()) {}
    ~Gil() { PyGILState_Release(state_); }
    Gil(const Gil&) = delete;
    Gil& operator=(const Gil&) = delete;

private:
    static PyGILState_STATE take() {
        if (!interpreter_alive()) stop_here_for_good();
        ComingBack back;
        return PyGILState_Ensure();
    }
    PyGILState_STATE state_;
};

// NoGil: the GIL released for a scope (a channel operation), as pybind11's
// gil_scoped_release, except that the way back into Python is not taken once
// the program exits (see g_exiting).
class NoGil {
public:
    NoGil() noexcept : state_(PyEval_SaveThread()) {}
    ~NoGil() noexcept(false) {  // (see Gil)
        ComingBack back;
        PyEval_RestoreThread(state_);
    }
    NoGil(const NoGil&) = delete;
    NoGil& operator=(const NoGil&) = delete;

private:
    PyThreadState* state_;
};

// python_error_text: the pending Python exception as "Type: message", cleared
// (the GIL held).
std::string python_error_text();

// pickle / unpickle, the GIL held; they throw std::runtime_error (with the
// Python error's text) when Python fails.
std::string pickle(PyObject* o);
PyObject* unpickle(const std::string& bytes);

class Object {
public:
    Object() noexcept = default;
    // steal: takes over one reference (o may be null).
    static Object steal(PyObject* o) noexcept {
        Object r;
        r.p_ = o;
        return r;
    }
    Object(Object&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
    Object& operator=(Object&& other) noexcept {
        if (this != &other) {
            drop();
            p_ = std::exchange(other.p_, nullptr);
        }
        return *this;
    }
    Object(const Object& other) : p_(other.p_) {
        if (p_) {
            Gil gil;
            Py_INCREF(p_);
        }
    }
    Object& operator=(const Object& other) {
        if (this != &other) *this = Object(other);
        return *this;
    }
    ~Object() { drop(); }

    // release: the reference, given up to the caller (the GIL not needed).
    PyObject* release() noexcept { return std::exchange(p_, nullptr); }
    PyObject* get() const noexcept { return p_; }

    // Across OS processes: pickled on the writer's side, unpickled on the
    // reader's (cereal calls these).
    template <class Archive>
    void save(Archive& archive) const {
        std::string bytes;
        {
            Gil gil;
            bytes = pickle(p_ ? p_ : Py_None);
        }
        archive(bytes);
    }
    template <class Archive>
    void load(Archive& archive) {
        std::string bytes;
        archive(bytes);
        Gil gil;
        PyObject* o = unpickle(bytes);
        drop_holding_gil();
        p_ = o;
    }

private:
    void drop() noexcept {
        if (!p_) return;
        PyObject* o = std::exchange(p_, nullptr);
        if (kept_out() || !interpreter_alive()) return;  // (at exit: let it go)
        Gil gil;
        Py_DECREF(o);
    }
    void drop_holding_gil() noexcept { Py_CLEAR(p_); }

    PyObject* p_ = nullptr;
};

}  // namespace cspp
