// park.cpp: park and ready, the runtime's two verbs, for fibers; and what a
// fiber does when it ends.
//
// Owns: the hot path of every blocking operation: park_fiber (switch to the
// next runnable process of this worker, or to the worker's loop),
// finish_park (on the destination of that switch), ready (make a parked
// process runnable), next_local (which process a worker runs next) and
// task_entry (a fiber's whole life). Threads park in threads.cpp.
//
// The park rule (runtime.hpp) means nobody can ready a fiber before it has
// switched away: finish_park, on the context it switched to, notes it Parked
// and only then arms its timer and runs its Release (unlocking the channel
// its waiter is on, say). ready() of a fiber is thus a plain push to a run
// queue, with no atomic handshake. These functions share one file so that
// the compiler can inline them into each other (no link-time optimisation).
#include "runtime/scheduler.hpp"

#include "runtime/futex.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <ctime>
#include <thread>
#include <utility>

namespace csp::runtime {

__attribute__((noinline)) Worker* this_worker() noexcept {
    asm volatile("");
    return t_worker;
}

// Runs on the destination of a park switch, once the parking fiber is fully
// suspended: only now may anybody find it and ready it (the park rule).
//
// The Release runs before the timer is armed, and nothing of the task is
// touched after either: once the Release has run a partner may ready the
// task, and once the timer is armed an idle worker may fire it (timers.cpp's
// take-over); either way the task may run, and park again (writing its
// release and timer), on another worker while this one is still here.
// (The release is read, not cleared: every park writes its own. The timer
// is read only for a timed park, the rare case.)
void finish_park(void* arg) noexcept {
    auto* t = static_cast<Task*>(arg);
    Parker* const parker = t->parker;
    const Release release = t->release;
    if (t->timed) [[unlikely]] {
        t->timed = false;
        const Timer timer = t->timer;
        parker->state.store(kParked, std::memory_order_release);
        release();
        this_worker()->add_timer(timer);
        return;
    }
    parker->state.store(kParked, std::memory_order_release);  // read by the deadlock detector
    release();
}

void run_task(Worker* w, Task* t) noexcept {
    w->current.store(t, std::memory_order_relaxed);
    t->home.store(w->index, std::memory_order_relaxed);
    switch_context(w->scheduler, t->context, nullptr, nullptr);
}

// Pick the next runnable task of this worker without stealing: the one just
// woken (run_next), else the private list, else the shared queue.
//
// Two processes that keep waking each other would hand the worker back and
// forth through run_next for ever, and nothing queued would run (there is no
// preemption). So once run_next has been taken kRunNextStreak times in a
// row, ready() sends the process it wakes to the back of the private list
// instead, and everything queued runs first (Go gets a similar effect from
// the woken goroutine inheriting the time slice). A small streak keeps the
// locality of run_next for pipelines and rings (commstime) and lets a busy
// many-to-one network batch up: in bench/stressed_alt the writers all get to
// block on their channels, so the reader's choices find a ready guard at
// once instead of parking every other message (2.6x fewer instructions per
// message than with a streak of 64). The shared queue, where wake-ups from
// other threads land, comes first every 61st pick, as in Go, so the private
// list cannot starve it.
constexpr unsigned kRunNextStreak = 4;

namespace {
// (Inlined into the park and exit paths; next_local is the same for the
// worker loop, in another file.)
[[gnu::always_inline]] inline Task* pick_next(Worker* w) noexcept {
    w->turns.store(w->turns.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (simulating()) [[unlikely]] return sim_pick(w);
    if (Task* t = w->run_next) {
        w->run_next = nullptr;
        ++w->streak;
        return t;
    }
    if (w->next_shared.load(std::memory_order_relaxed)) [[unlikely]] {
        if (Task* t = w->next_shared.exchange(nullptr, std::memory_order_acquire)) {
            ++w->streak;
            return t;
        }
    }
    w->streak = 0;
    if (++w->picks % 61 == 0) {
        w->drain_inbox();
        if (Task* t = w->pop(true)) return t;
    }
    if (Task* t = w->pop_local(true)) return t;
    return w->pop(true);
}
}  // namespace

Task* next_local(Worker* w) noexcept { return pick_next(w); }

namespace {

// park_chores: what a parking fiber's worker does now and then, out of the
// park path: fire due timers; hand surplus runnable processes to idle workers.
[[gnu::noinline]] void park_chores(Worker* w) noexcept {
    if (w->has_timers()) w->fire_timers();
    if (w->local_head && started().idle.load(std::memory_order_relaxed) > 0 && !simulating()) {
        w->publish();  // more runnable processes here than this worker can run
        started().wake_idle_worker();
    }
}

}  // namespace

std::uint32_t park_fiber(Parker* p, WaitKind kind, const WaitReason* reason, Release release) noexcept {
    p->wait_reason.store(reason, std::memory_order_relaxed);
    p->wait_kind.store(kind, std::memory_order_relaxed);
    Worker* w = t_worker;  // (read before the switch: cannot be stale yet)
    Task* me = w->current.load(std::memory_order_relaxed);
    me->release = release;
    if (w->has_timers() || (w->local_head && started().idle.load(std::memory_order_relaxed) > 0))
        [[unlikely]] park_chores(w);
    Task* next = pick_next(w);
    if (next && next->context.fctx) [[likely]] {
        w->current.store(next, std::memory_order_relaxed);
        next->home.store(w->index, std::memory_order_relaxed);
        switch_context(me->context, next->context, finish_park, me);
    } else {
        w->start_next = next;
        w->current.store(nullptr, std::memory_order_relaxed);
        switch_context(me->context, w->scheduler, finish_park, me);
    }
    p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
    return outcome_of(p);
}

Context* task_entry(void* arg) noexcept {
    auto* t = static_cast<Task*>(arg);
    trace_process_start(t->parker, t->body->name_c_str());
    t->body->run();
    trace_process_end(t->parker);
    Runtime& r = rt();
    // Out of the registry first: while in it, its body (and name) is there
    // for a view of the network (with_registered). (Its arguments are gone
    // already; and while this runs its worker is busy, so no deadlock can be
    // found meanwhile.)
    r.registry.remove(t->parker);
    t->body.reset();
    release_parker(t->parker);
    Worker* w = this_worker();
    if (r.live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        r.live_zero.store(1);
        futex_wake(r.live_zero, 1 << 30);
    }
    Task* next = pick_next(w);
    free_task(t);
    if (next) {
        w->current.store(next, std::memory_order_relaxed);
        next->home.store(w->index, std::memory_order_relaxed);
        return &next->context;
    }
    w->current.store(nullptr, std::memory_order_relaxed);
    return &w->scheduler;
}

Parker* current() noexcept {
    // t_worker read directly: this function never switches, so the address
    // cannot go stale within it.
    if (Worker* w = t_worker) {
        if (Task* t = w->current.load(std::memory_order_relaxed)) return t->parker;
    }
    if (Parker* g = t_guest_parker) return g;
    return this_thread_record().parker;
}

bool running_now(const Parker* p) noexcept {
    if (p->is_thread) return p->state.load(std::memory_order_acquire) != kParked;
    const Task* t = task_of(p);
    for (const auto& w : started().workers) {
        if (w->current.load(std::memory_order_relaxed) == t) return true;
    }
    return false;
}

Parker* current_if_known() noexcept {
    if (Worker* w = t_worker) {
        if (Task* t = w->current.load(std::memory_order_relaxed)) return t->parker;
    }
    if (Parker* g = t_guest_parker) return g;
    return known_thread_parker();
}

const char* current_name() noexcept {
    Worker* w = this_worker();
    if (Task* t = w ? w->current.load(std::memory_order_relaxed) : nullptr; t && t->body) {
        return t->body->name_c_str();
    }
    if (Parker* g = t_guest_parker) return thread_of(g)->name.c_str();
    return this_thread_record().name.c_str();
}

const Context* running_context() noexcept {
    // (Called from a signal handler: reads only.)
    if (Worker* w = t_worker) {
        if (Task* t = w->current.load(std::memory_order_relaxed)) return &t->context;
    }
    return nullptr;
}

bool in_fiber() noexcept {
    Worker* w = this_worker();
    return w && w->current.load(std::memory_order_relaxed);
}

// A yielding fiber parks as Running (the deadlock detector sees it can run)
// and, once suspended, queues itself behind what this worker has queued, on
// the shared queue, where an idle worker may take it.
void yield() noexcept {
    Worker* w = t_worker;
    if (!w || !w->current.load(std::memory_order_relaxed)) {
        if (Parker* g = t_guest_parker) return guest_yield(g);
        std::this_thread::yield();
        return;
    }
    static constexpr WaitReason kYielding{"is yielding"};
    Parker* me = w->current.load(std::memory_order_relaxed)->parker;
    // A wait of its own (nobody can win it), so that a rescue of an earlier
    // wait cannot mistake this park for that one (drain_inbox).
    (void)begin_wait(me);
    park_fiber(me, WaitKind::Running, &kYielding, Release{[](void* arg) noexcept {
                   auto* p = static_cast<Parker*>(arg);
                   p->state.store(kRunning, std::memory_order_relaxed);
                   Worker* here = t_worker;
                   here->push(task_of(p));
                   if (started().idle.load(std::memory_order_relaxed) > 0) started().wake_idle_worker();
               }, me});
}

constinit __attribute__((tls_model("initial-exec"))) thread_local GoneOn t_gone_on;

void note_contended_by(std::uint32_t worker) noexcept {
    Worker* w = t_worker;
    if (!w || simulating()) return;
    t_gone_on.move_to = worker + 1;
    t_gone_on.mover = w->current.load(std::memory_order_relaxed);
    t_gone_on.mover_turn = w->turns.load(std::memory_order_relaxed);
    t_gone_on.budget = 1;  // (the next write that does not wait moves: gone_on_check)
}

namespace {
std::atomic<std::uint64_t> g_moved{0};

// move_to_worker: the calling fiber goes to the queue of worker `to` (see
// note_contended_by), unless that is its own or none.
[[gnu::noinline]] void move_to_worker(std::uint32_t to) noexcept {
    Worker* w = t_worker;
    if (!w || !w->current.load(std::memory_order_relaxed) || simulating()) return;
    Runtime& r = started();
    if (to >= r.workers.size() || to == static_cast<std::uint32_t>(w->index)) return;
    static constexpr WaitReason kMoving{"is moving to another worker"};
    Parker* me = w->current.load(std::memory_order_relaxed)->parker;
    (void)begin_wait(me);  // (a wait of its own, as yield's)
    w->moving_to = r.workers[to].get();
    g_moved.fetch_add(1, std::memory_order_relaxed);
    park_fiber(me, WaitKind::Running, &kMoving, Release{[](void* arg) noexcept {
                   auto* p = static_cast<Parker*>(arg);
                   p->state.store(kRunning, std::memory_order_relaxed);
                   Worker* there = std::exchange(t_worker->moving_to, nullptr);
                   there->push(task_of(p));
                   there->rouse();
               }, me});
}
}  // namespace

std::uint64_t processes_moved() noexcept { return g_moved.load(std::memory_order_relaxed); }

void gone_on_check() noexcept {
    GoneOn& g = t_gone_on;
    if (g.move_to != 0) [[unlikely]] {
        const std::uint32_t to = g.move_to - 1;
        g.move_to = 0;
        g.budget = g.step == 0 ? 4 : static_cast<std::int32_t>(g.step);
        // (Only the process that met the lock, and only if its worker has
        // not switched since: one woken since runs where its waker put it.)
        Worker* w = t_worker;
        if (w && g.mover == w->current.load(std::memory_order_relaxed) &&
            g.mover_turn == w->turns.load(std::memory_order_relaxed)) {
            move_to_worker(to);
        }
        return;
    }
    const bool first = g.step == 0;
    g.step = g.step == 0 ? 4 : std::min<std::uint32_t>(g.step * 2, 64);
    g.budget = static_cast<std::int32_t>(g.step);
    Worker* w = t_worker;
    if (!w || !w->current.load(std::memory_order_relaxed) || simulating()) return;
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    const std::int64_t now = std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    if (first) {
        g.since = now;
        return;
    }
    if (now - g.since < kSlice) return;
    if (!w->has_runnable()) {  // (nobody else to run here: go on, for another slice)
        g.since = now;
        return;
    }
    yield();  // (the switch starts the count again)
}

namespace {
// (Tracing: the wait is a slice on the process's track, begun before the
// park, so before any partner can see it, and ended once it runs again.)
[[gnu::noinline]] std::uint32_t park_traced(Parker* p, WaitKind kind, const WaitReason* reason,
                                            Release release) noexcept {
    const bool slice = trace_block_begin(p, reason);
    const std::uint32_t word =
        p->is_thread ? park_thread(p, kind, reason, -1, 0, release) : park_fiber(p, kind, reason, release);
    if (slice) trace_block_end(p);
    return word;
}
}  // namespace

std::uint32_t park(Parker* p, WaitKind kind, const WaitReason* reason, Release release) noexcept {
    if (tracing()) [[unlikely]] return park_traced(p, kind, reason, release);
    if (p->is_thread) return park_thread(p, kind, reason, -1, 0, release);
    return park_fiber(p, kind, reason, release);
}

// ring: rouse one sleeping worker of the OS process whose inbox `box` is.
// A word left roused but maybe not woken (its rouser died or stopped between
// the two steps) is woken again, or that worker would sleep on.
void ring(Inbox* box) noexcept {
    for (std::uint32_t i = 0; i < box->count; ++i) {
        std::uint32_t seen = kAsleep;
        if (box->words[i].compare_exchange_strong(seen, kRousedRemotely, std::memory_order_seq_cst) ||
            seen == kRousedRemotely) {
            futex_wake(box->words[i], 1);
            if (seen == kAsleep) break;
        }
    }
}

namespace {
// ready_elsewhere: ready() for everything but a fiber of this OS process
// woken from a worker (a thread, a fiber of another OS process, a fiber
// woken from a plain thread).
[[gnu::noinline]] void ready_elsewhere(Parker* p) noexcept {
    if (p->is_guest && p->home == g_local_inbox) {
        // A guest of this OS process: to its host (it stays parked there,
        // its host outliving it, once the exchange has seen it parked).
        if (p->state.exchange(kNotified, std::memory_order_acq_rel) == kParked) to_guest_host(p);
        return;
    }
    if (p->is_thread && !p->is_guest) {
        // The thread may run on, end and free its parker as soon as the
        // exchange publishes Notified: nothing of p is read after it. The
        // address stays mapped (arena); a stale futex wake-up is harmless, as
        // every futex waiter re-checks its word.
        const bool across = p->home != g_local_inbox;  // (read before p may be freed)
        if (p->state.exchange(kNotified, std::memory_order_acq_rel) == kParked) futex_wake(p->state, 1);
        if (across) crossed();
        return;
    }
    if (p->home != g_local_inbox) {
        // A fiber of another OS process, or a guest there: through its
        // inbox (a worker there hands a guest to its host, and a rescue
        // after this waker dies finds it in the inbox or not at all).
        Inbox* box = p->home;
        Parker* old = box->head.load(std::memory_order_relaxed);
        do {
            p->inbox_next = old;
        } while (!box->head.compare_exchange_weak(old, p, std::memory_order_seq_cst,
                                                  std::memory_order_relaxed));
        // From here the owner may run the fiber, end it and free p.
        ring(box);
        crossed();
        return;
    }
    // A fiber woken from a plain thread: to the queue of the worker it last
    // ran on.
    auto* t = task_of(p);
    p->state.store(kRunning, std::memory_order_relaxed);
    Runtime& r = started();
    Worker* home = r.workers[static_cast<std::size_t>(t->home.load(std::memory_order_relaxed)) %
                             r.workers.size()].get();
    home->push(t);
    if (!home->rouse()) r.wake_idle_worker();
}

// share: a process woken on worker w goes where another worker can take it
// (some worker is idle).
[[gnu::noinline]] void share(Worker* w, Task* t) noexcept {
    w->publish();
    w->push(t);
    started().wake_idle_worker();
}
}  // namespace

void rescue(Parker* p, std::uint64_t token, std::uint32_t won_mask, std::uint32_t won_as,
            std::uint32_t outcome) noexcept {
    for (std::uint64_t word = p->selection.load(std::memory_order_acquire);;) {
        if ((word >> 32) != token) return;  // a later wait: this one was readied
        const auto low = static_cast<std::uint32_t>(word);
        if (low == kWaiting) {
            // Not won yet: win it here, and ready it as any winner does.
            if (try_complete(p, token, outcome)) {
                ready(p);
                return;
            }
            word = p->selection.load(std::memory_order_acquire);
            continue;
        }
        if (low >= kWoken || (low & won_mask) != won_as) return;  // another waker's
        break;
    }
    // Won by the dead waker, perhaps readied: p's OS process decides. (Once:
    // a second rescuer of the same wait, after a first that died, stops here.)
    std::uint64_t posted = p->rescue.load(std::memory_order_acquire);
    do {
        if ((posted >> 32) == token) return;
    } while (!p->rescue.compare_exchange_weak(posted, waiting_word(token) | outcome, std::memory_order_acq_rel,
                                              std::memory_order_acquire));
    Inbox* box = p->home;
    Parker* old = box->rescues.load(std::memory_order_relaxed);
    do {
        p->rescue_next = old;
    } while (!box->rescues.compare_exchange_weak(old, p, std::memory_order_seq_cst, std::memory_order_relaxed));
    ring(box);
    if (box != g_local_inbox) crossed();
}

namespace {
// ready_beside_idle: ready() of a fiber woken on worker w while another
// worker is idle: it goes where that worker can take it (next_shared, or
// the shared queue once run_next has had its streak).
[[gnu::noinline]] void ready_beside_idle(Worker* w, Task* t) noexcept {
    if (simulating()) {
        // (The other workers do not run processes now: one of them that
        // found a deadlock hands the processes it wakes to the first.)
        if (w->index == 0) return w->push_local(t);
        return sim_hand_to_first(t);
    }
    if (w->streak >= kRunNextStreak) return share(w, t);
    if (Task* displaced = w->next_shared.exchange(t, std::memory_order_acq_rel)) share(w, displaced);
}
}  // namespace

void ready(Parker* p) noexcept {
    Worker* w = t_worker;  // (ready never switches: t_worker cannot go stale here)
    if (p->is_thread || p->home != g_local_inbox || !w) [[unlikely]] return ready_elsewhere(p);
    // A fiber, fully parked (the park rule), so nobody else touches it now,
    // woken by a communication on this worker: run it next, here (unless
    // run_next has had its streak; see next_local). What goes to a queue
    // stays private unless another worker is idle.
    auto* t = task_of(p);
    p->state.store(kRunning, std::memory_order_relaxed);
    if (started().idle.load(std::memory_order_relaxed) > 0) [[unlikely]] return ready_beside_idle(w, t);
    Task* queued = t;
    if (w->streak < kRunNextStreak) {
        queued = w->run_next;  // displaced, if any
        w->run_next = t;
    }
    if (queued) w->push_local(queued);
}

}  // namespace csp::runtime
