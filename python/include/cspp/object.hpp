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
inline bool kept_out() noexcept { return g_exiting.load(std::memory_order_acquire) && !t_exiting_thread; }

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

// Gil: holds the GIL for a scope, on any thread (PyGILState_Ensure).
//
// Neither taking the GIL here nor taking it back in ~NoGil is noexcept: a
// thread that passed kept_out()'s look just before the program exits, and
// then waits for the GIL while the interpreter finalizes, is ended by
// CPython 3.11 with pthread_exit, whose forced unwind must pass through
// these frames (pybind11's dispatcher lets it through) to end the thread.
// Through a noexcept frame it calls std::terminate ("terminate called
// without an active exception": seen once at the exit of the test run of
// test_processes.py, whose last test ends 200 thread processes, each taking
// the GIL back after Join::arrive).
class Gil {
public:
    Gil() : state_(take()) {}
    ~Gil() { PyGILState_Release(state_); }
    Gil(const Gil&) = delete;
    Gil& operator=(const Gil&) = delete;

private:
    static PyGILState_STATE take() {
        if (kept_out() || !interpreter_alive()) stop_here_for_good();
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
        if (kept_out()) stop_here_for_good();
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
