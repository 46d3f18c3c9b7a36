// green.cpp: the hub of green processes (cspp.greenlets; green.hpp says why
// each has a guest).
//
// One hub per thread that runs green processes: a GuestHost, the greenlet
// of the program that made it (the root, itself a green process while the
// hub lives, so that its waits let the others run), a greenlet of its own
// (the loop) and the green processes started and not yet run. A green
// process whose call must wait switches straight to the next one that is
// ready (its guest readied, or never run yet); only when none is does it
// switch to the loop, which sleeps the thread (GIL released) until one is.
// Every switch happens here, so t_green always names the green process whose
// greenlet runs.
#include "cspp/green.hpp"
#include "cspp/object.hpp"

#include "runtime/runtime.hpp"

#include <pybind11/pybind11.h>

#include <greenlet.h>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

namespace py = pybind11;

namespace cspp {
namespace runtime = csp::runtime;

void raise_green_interrupt();  // module.cpp: the main Parallel raises KeyboardInterrupt

namespace {

struct GreenProc : Green {
    PyGreenlet* greenlet = nullptr;  // a reference
    py::object body;                 // until it runs
    // Its greenlet was killed while its guest waited (greenlet's GreenletExit
    // at exit): the guest is left parked, and never resumed.
    bool abandoned = false;
};

struct Hub {
    runtime::GuestHost host;
    GreenProc root;
    PyGreenlet* loop = nullptr;
    std::deque<GreenProc*> fresh;  // started, never run
    std::vector<GreenProc*> dead;  // ended, their greenlets to let go of
    std::size_t live = 0;          // started, not ended
    std::size_t abandoned = 0;     // their guests wait on: the hub stays
    bool quit = false;             // the loop is to end (green_idle)
};

thread_local Hub* t_hub = nullptr;

// pick: a green process to run: one readied, or (fresh_too) one never run.
// Only the loop starts those: a greenlet starts as deep in Python's
// recursion count as its starter is, so a chain of processes each starting
// the next from inside a call would run into the recursion limit.
GreenProc* pick(Hub& h, bool fresh_too) {
    // (Those never run first: processes that keep each other busy must not
    // keep a new one from its start.)
    if (fresh_too && !h.fresh.empty()) {
        GreenProc* p = h.fresh.front();
        h.fresh.pop_front();
        return p;
    }
    while (runtime::Guest* g = h.host.take()) {
        auto* p = static_cast<GreenProc*>(runtime::GuestHost::user_of(g));
        if (!p->abandoned) return p;
    }
    return nullptr;
}

// pybind11 keeps a stack of the calls into C++ in progress on a thread (its
// loader_life_support frames, in a thread-local): each greenlet has its
// own, put back when it runs again.
auto& call_stack_key() {
#if PYBIND11_INTERNALS_VERSION == 4
    return py::detail::get_local_internals().loader_life_support_tls_key;
#else
    return py::detail::get_internals().loader_life_support_tls_key;
#endif
}

void switch_to(PyGreenlet* target) {
    void* calls = PYBIND11_TLS_GET_VALUE(call_stack_key());
    PyObject* r = PyGreenlet_Switch(target, nullptr, nullptr);
    PYBIND11_TLS_REPLACE_VALUE(call_stack_key(), calls);
    if (!r) throw py::error_already_set();
    Py_DECREF(r);
}

void bury(Hub& h) {
    for (GreenProc* p : h.dead) {
        Py_XDECREF(p->greenlet);
        delete p;
    }
    h.dead.clear();
}

void switch_away(Green* self) {
    auto* me = static_cast<GreenProc*>(self);
    Hub& h = *t_hub;
    // (With processes never run yet, to the loop, which starts them.)
    GreenProc* next = h.fresh.empty() ? pick(h, false) : nullptr;
    if (next == me) return;  // readied meanwhile: run on
    t_green = nullptr;
    try {
        switch_to(next ? next->greenlet : h.loop);
    } catch (...) {
        // (Its greenlet is being killed: greenlet's GreenletExit, at exit;
        // or, for the root, an exception its child, the loop, ended with.
        // Its guest waits on: nobody resumes it, its record stays, and its
        // later calls, if any, are a plain thread's.)
        me->abandoned = true;
        ++h.abandoned;
        throw;
    }
    t_green = me;
}

void init(GreenProc& p, Hub& h) {
    p.host = &h.host;
    p.switch_away = &switch_away;
}

// The loop: run what is ready; with nothing ready, sleep until something is.
void loop_run() {
    Hub& h = *t_hub;
    for (;;) {
        if (h.quit) return;  // (to its parent, the root, in green_idle)
        t_green = nullptr;
        bury(h);
        GreenProc* next = pick(h, true);
        if (!next) {
            NoGil nogil;
            h.host.wait();
            continue;
        }
        try {
            switch_to(next->greenlet);
        } catch (py::error_already_set& e) {
            // (GreenletExit, should greenlet kill the loop: out of it. An
            // exception that a green process's greenlet raised to it, its
            // parent, is reported and the loop goes on.)
            if (_PyGreenlet_API && e.matches(PyExc_GreenletExit)) throw;
            if (e.matches(PyExc_KeyboardInterrupt)) raise_green_interrupt();
            else e.discard_as_unraisable("cspp.greenlets: a green process's greenlet");
        }
    }
}

Hub& hub() {
    if (t_hub) return *t_hub;
    auto* h = new Hub;
    init(h->root, *h);
    h->root.guest = h->host.add(runtime::current_name(), &h->root);
    h->root.greenlet = PyGreenlet_GetCurrent();
    py::cpp_function loop([](const py::args&) { loop_run(); });  // (started by a switch, with its args)
    h->loop = PyGreenlet_New(loop.ptr(), nullptr);
    if (!h->loop) throw py::error_already_set();
    t_hub = h;
    t_green = &h->root;
    return *h;
}

void green_body(GreenProc* p) {
    Hub& h = *t_hub;
    t_green = p;
    struct End {
        Hub& h;
        GreenProc* p;
        ~End() {
            t_green = nullptr;
            --h.live;
            if (p->abandoned) return;  // (its guest waits on: the record stays)
            h.host.remove(p->guest);   // (not waiting: its last call returned)
            h.dead.push_back(p);
        }
    } end{h, p};
    py::object body = std::move(p->body);
    try {
        body();  // (Process._green_body: it raises nothing of its own)
    } catch (py::error_already_set& e) {
        if (e.matches(PyExc_GreenletExit)) throw;
        // (A second Ctrl-C, say, in its finally clauses.)
        if (e.matches(PyExc_KeyboardInterrupt)) raise_green_interrupt();
        else e.discard_as_unraisable("cspp.greenlets: a green process");
    }
}

// green_start: a green process running body() (which must not raise but
// for greenlet's GreenletExit), on this thread's hub, made if need be.
void green_start(const std::string& name, py::object body) {
    Hub& h = hub();
    auto* p = new GreenProc;
    init(*p, h);
    p->guest = h.host.add(name, p);
    py::cpp_function run([p](const py::args&) { green_body(p); });
    p->greenlet = PyGreenlet_New(run.ptr(), h.loop);
    if (!p->greenlet) {
        h.host.remove(p->guest);
        delete p;
        throw py::error_already_set();
    }
    p->body = std::move(body);
    h.fresh.push_back(p);
    ++h.live;
}

// green_drain: the calling green program (root) lets the others run until
// none is left or `seconds` have passed (after a Ctrl-C has poisoned them).
void green_drain(double seconds) {
    Hub* h = t_hub;
    if (!h || t_green != &h->root) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (h->live > 0 && std::chrono::steady_clock::now() < deadline) {
        auto nap = [] { runtime::sleep_for(std::chrono::milliseconds(5)); };
        on_green(t_green, nap);
    }
}

// green_idle: the hub goes, if nothing runs on it (the end of a Parallel
// of the root): its root guest leaves the registry.
void green_idle() {
    Hub* h = t_hub;
    if (!h || h->live > 0 || h->abandoned > 0 || t_green != &h->root || !h->fresh.empty()) return;
    t_hub = nullptr;
    t_green = nullptr;
    bury(*h);
    h->host.remove(h->root.guest);
    // The loop ends now, rather than when its greenlet is collected (some
    // finished process's greenlet, its child, may be kept by a traceback):
    // greenlet kills a suspended greenlet it collects by running it.
    if (PyGreenlet_STARTED(h->loop)) {
        t_hub = h;
        h->quit = true;
        switch_to(h->loop);
        t_hub = nullptr;
    }
    t_green = nullptr;
    Py_XDECREF(h->loop);
    h->loop = nullptr;
    Py_XDECREF(h->root.greenlet);
    delete h;
}

}  // namespace

void define_green(py::module_& m) {
    PyGreenlet_Import();
    if (!_PyGreenlet_API) {
        PyErr_Clear();
        m.attr("have_greenlets") = false;
        return;
    }
    m.attr("have_greenlets") = true;
    m.def("green_start", &green_start, py::arg("name"), py::arg("body"));
    m.def("green_drain", &green_drain, py::arg("seconds"));
    m.def("green_idle", &green_idle);
}

}  // namespace cspp
