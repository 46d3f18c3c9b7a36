// guests.cpp: guests, processes that a plain thread (their host) runs itself
// on stacks of their own (runtime.hpp's GuestHost; python/'s green processes).
//
// Owns: the guests' records (a ThreadRecord each, so that the rest of the
// runtime sees a thread: registry, running count, names, traces), their
// stacks, the host's ready queue and the guests' timers. Must hold:
//   - a guest parks as a thread does (park_thread's protocol: Running ->
//     Parked by the guest, exchanged to Notified by its waker), except that
//     instead of sleeping it switches back to the host code that entered
//     or resumed it. A waker that finds it Parked hands it to its host
//     (to_guest_host); one that finds it Running leaves it to see Notified.
//   - its host's queue takes wake-ups from any thread: the host's own (a
//     guest waking another, a timer) straight onto a private list; others
//     onto a lock-free stack, after which they wake the host's own wait
//     (the host parks its thread's parker in a Join wait, so a network of
//     guests that can go no further is a deadlock like any other).
//   - a guest counts as a running thread except while parked in a wait that
//     can deadlock (as a thread), so the deadlock detector sees a network
//     of guests whole.
#include "runtime/context.hpp"
#include "runtime/scheduler.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace csp::runtime {

constinit __attribute__((tls_model("initial-exec"))) thread_local Parker* t_guest_parker = nullptr;

namespace {
// (initial-exec: see t_worker.) The host the calling thread is.
constinit __attribute__((tls_model("initial-exec"))) thread_local GuestHost::State* t_host = nullptr;
}  // namespace

struct Guest : ThreadRecord {
    Guest(std::string_view name, GuestHost::State* h, void* u) : ThreadRecord(name), host(h), user(u) {
        parker->is_guest = true;
    }
    GuestHost::State* host;
    void* user;
    Context context;
    bool ran = false;      // it has been switched to
    bool done = false;     // its call has returned
    bool quit = false;     // remove(): leave the stack for good
    void (*fn)(void*) = nullptr;
    void* arg = nullptr;
    Guest* next = nullptr;  // in its host's queues
};

namespace {
Guest* guest_of(const Parker* p) noexcept { return static_cast<Guest*>(thread_of(p)); }
}  // namespace

struct GuestHost::State {
    Context caller;           // the host's stack, where a guest goes back to
    Parker* self = nullptr;   // the host thread's own parker
    // Readied from this thread: a FIFO only this thread touches.
    Guest* head = nullptr;
    Guest* tail = nullptr;
    // Readied from elsewhere: a lock-free stack (newest first).
    std::atomic<Guest*> remote{nullptr};
    // The host's wait in progress (its token), or 0: a remote waker ends it.
    std::atomic<std::uint64_t> waiting{0};
    // The host thread is inside wait()'s park: a wake-up from this thread
    // (the deadlock breaker, run by its own park) must rouse it too.
    bool in_wait = false;
    // Wakers between their push and their rouse (~GuestHost waits for them).
    std::atomic<int> pushing{0};
    std::vector<Timer> timers;  // a min-heap on deadline (each holds a reference to its parker)
    WaitReason reason{"is running its green processes"};

    void push_local(Guest* g) noexcept {
        g->next = nullptr;
        if (tail) tail->next = g;
        else head = g;
        tail = g;
    }
    Guest* pop_local() noexcept {
        Guest* g = head;
        if (g) {
            head = g->next;
            if (!head) tail = nullptr;
        }
        return g;
    }
    void rouse() noexcept {
        if (const std::uint64_t token = waiting.load(std::memory_order_seq_cst)) wake(self, token, kWoken);
    }
    void push(Guest* g) noexcept {
        if (t_host == this && !in_wait) return push_local(g);
        pushing.fetch_add(1, std::memory_order_seq_cst);
        Guest* old = remote.load(std::memory_order_relaxed);
        do {
            g->next = old;
        } while (!remote.compare_exchange_weak(old, g, std::memory_order_seq_cst, std::memory_order_relaxed));
        rouse();
        pushing.fetch_sub(1, std::memory_order_seq_cst);
    }
    // ready: take() has a guest to give (timers fired, remote ones taken).
    bool ready() noexcept {
        fire_timers();
        take_remote();
        return head != nullptr;
    }
    void take_remote() noexcept {
        if (!remote.load(std::memory_order_relaxed)) return;
        Guest* g = remote.exchange(nullptr, std::memory_order_seq_cst);
        Guest* fifo = nullptr;
        while (g) {
            Guest* n = g->next;
            g->next = fifo;
            fifo = g;
            g = n;
        }
        while (fifo) {
            Guest* n = fifo->next;
            push_local(fifo);
            fifo = n;
        }
    }
    void fire_timers() noexcept {
        if (timers.empty()) return;
        const auto now = runtime::now();
        while (!timers.empty() && timers.front().deadline <= now) {
            std::pop_heap(timers.begin(), timers.end(), std::greater<>{});
            const Timer t = timers.back();
            timers.pop_back();
            wake(t.parker, t.token, kTimedOut);  // (ready: onto this host's list)
            release_parker(t.parker);
        }
    }
    bool run(Guest* g) noexcept {
        t_guest_parker = g->parker;
        g->ran = true;
        switch_context(caller, g->context, nullptr, nullptr);
        t_guest_parker = nullptr;
        return g->done;
    }
};

namespace {
Context* guest_entry(void* arg) noexcept {
    auto* g = static_cast<Guest*>(arg);
    for (;;) {
        if (g->quit) return &g->host->caller;  // (the final switch gives the stack back)
        g->fn(g->arg);
        g->done = true;
        switch_context(g->context, g->host->caller, nullptr, nullptr);
    }
}
}  // namespace

void to_guest_host(Parker* p) noexcept { guest_of(p)->host->push(guest_of(p)); }

std::uint32_t park_guest(Parker* p, WaitKind kind, const WaitReason* reason, std::int64_t timeout_ns,
                         std::uint64_t token, Release release) noexcept {
    Guest* g = guest_of(p);
    p->wait_reason.store(reason, std::memory_order_relaxed);
    p->wait_kind.store(kind, std::memory_order_relaxed);
    release();
    std::uint32_t expected = kRunning;
    if (p->state.compare_exchange_strong(expected, kParked, std::memory_order_acq_rel)) {
        if (timeout_ns >= 0) {
            p->refs.fetch_add(1, std::memory_order_relaxed);  // the timer's
            auto& timers = g->host->timers;
            timers.push_back(Timer{runtime::now() + std::chrono::nanoseconds(timeout_ns), p, token});
            std::push_heap(timers.begin(), timers.end(), std::greater<>{});
        }
        // (A rescue of this wait finished before it parked: finish_rescue
        // left it to see the flag. Whoever moves it from Parked first wins.)
        const std::uint64_t epoch = p->selection.load(std::memory_order_relaxed) >> 32;
        if (const std::uint64_t rescue = p->rescue.load(std::memory_order_acquire);
            (rescue & Parker::kRescueDone) && (rescue >> 32) == epoch) {
            std::uint32_t parked = kParked;
            if (p->state.compare_exchange_strong(parked, kRunning, std::memory_order_acq_rel)) {
                p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
                return outcome_of(p);
            }
        }
        const bool counted = can_deadlock(kind);
        if (counted) stop_counting_as_running();
        switch_context(g->context, g->host->caller, nullptr, nullptr);
        if (counted) count_as_running_again();
    }
    p->state.store(kRunning, std::memory_order_relaxed);
    p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
    return outcome_of(p);
}

void guest_yield(Parker* p) noexcept {
    Guest* g = guest_of(p);
    (void)begin_wait(p);  // (a wait of its own, which nobody can win)
    p->state.store(kNotified, std::memory_order_relaxed);
    g->host->push_local(g);
    switch_context(g->context, g->host->caller, nullptr, nullptr);
    p->state.store(kRunning, std::memory_order_relaxed);
}

GuestHost::GuestHost() : s_(std::make_unique<State>()) {
    init_thread_context(s_->caller);
    s_->self = this_thread_record().parker;
    t_host = s_.get();
}

GuestHost::~GuestHost() {
    // (A waker that has pushed its guest, which may have run to its end
    // since, may still be about to rouse this host.)
    while (s_->pushing.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    for (const Timer& t : s_->timers) release_parker(t.parker);
    if (t_host == s_.get()) t_host = nullptr;
}

Guest* GuestHost::add(std::string_view name, void* user) {
    auto g = std::make_unique<Guest>(name, s_.get(), user);
    make_context(g->context, guest_entry, g.get());
    return g.release();
}

void GuestHost::remove(Guest* g) noexcept {
    if (g->ran) {
        g->quit = true;
        s_->run(g);  // (it leaves its stack for good, which goes back to the pool)
    } else {
        discard_context(g->context);
    }
    delete g;
}

bool GuestHost::enter(Guest* g, void (*fn)(void*), void* arg) noexcept {
    g->fn = fn;
    g->arg = arg;
    g->done = false;
    return s_->run(g);
}

bool GuestHost::resume(Guest* g) noexcept { return s_->run(g); }

Guest* GuestHost::take() noexcept {
    // (Those readied from elsewhere join the queue first: guests that keep
    // readying each other here must not keep them out for ever.)
    return s_->ready() ? s_->pop_local() : nullptr;
}

void GuestHost::wait() noexcept {
    State& s = *s_;
    while (!s.ready()) {
        const std::uint64_t token = begin_wait(s.self);
        s.waiting.store(token, std::memory_order_seq_cst);
        // (A waker that pushed before `waiting` was set has not woken us: look
        // again. One that saw it wins the wait; park then returns at once.)
        if (s.remote.load(std::memory_order_seq_cst) && try_complete(s.self, token, kWoken)) {
            s.waiting.store(0, std::memory_order_seq_cst);
            continue;
        }
        s.in_wait = true;
        if (s.timers.empty()) park(s.self, WaitKind::Join, &s.reason);
        else park_until(s.self, token, WaitKind::Join, &s.reason, s.timers.front().deadline);
        s.in_wait = false;
        s.waiting.store(0, std::memory_order_seq_cst);
    }
}

void* GuestHost::user_of(const Guest* g) noexcept { return g->user; }

bool GuestHost::in_guest() noexcept { return t_guest_parker != nullptr; }

}  // namespace csp::runtime
