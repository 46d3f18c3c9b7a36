// green.hpp: green processes (cspp.greenlets), Python processes that run as
// greenlets of one thread, PyCSP's fastest variant, on csp's channels.
//
// A greenlet switches by copying its slice of the C stack away and back, so
// nothing that a partner writes while a process waits (the read slot of a
// channel read, a choice's waiter records) may live there. Each green
// process therefore has a guest (runtime::GuestHost): every csp call that
// may wait runs on the guest's own stack, with the GIL released as on a
// thread. When the guest parks, the call switches to another green process
// that is ready (or to the thread's hub, which sleeps until one is), and
// resumes the guest once it is readied. python/src/green.cpp is the hub.
#pragma once

#include "cspp/object.hpp"

#include "runtime/runtime.hpp"

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace cspp {

struct Green {
    csp::runtime::GuestHost* host = nullptr;
    csp::runtime::Guest* guest = nullptr;
    // switch_away: run other green processes (or sleep in the hub) until
    // this one's guest has been readied; the GIL held.
    void (*switch_away)(Green* self) = nullptr;
};

// t_green: the green process whose greenlet runs on this thread now, or null
// (a thread process, the main program outside a green Parallel). Set by the
// hub at every switch. (Inline with default visibility: one variable for
// _cspp and every extension module that includes this.)
inline thread_local Green* t_green = nullptr;

// on_green(g, f): f() on g's guest (see above); its result or exception.
template <class F>
std::invoke_result_t<F&> on_green(Green* g, F& f) {
    using R = std::invoke_result_t<F&>;
    struct Call {
        F* f;
        std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
        std::exception_ptr error;
        static void run(void* arg) noexcept {
            auto* c = static_cast<Call*>(arg);
            try {
                if constexpr (std::is_void_v<R>) {
                    (*c->f)();
                    c->result = true;
                } else {
                    c->result.emplace((*c->f)());
                }
            } catch (...) {
                c->error = std::current_exception();
            }
        }
    } call{&f, {}, nullptr};
    bool done;
    {
        NoGil nogil;
        done = g->host->enter(g->guest, &Call::run, &call);
    }
    while (!done) {
        g->switch_away(g);
        NoGil nogil;
        done = g->host->resume(g->guest);
    }
    if (call.error) std::rethrow_exception(call.error);
    if constexpr (!std::is_void_v<R>) return std::move(*call.result);
}

}  // namespace cspp
