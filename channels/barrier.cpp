// barrier.cpp: the barrier core (see barrier.hpp).
#include "channels/barrier.hpp"

#include "channels/crossing.hpp"
#include "runtime/arena.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SharedLock;

// end_waits: every parked member goes on with `o` (lock held); returns
// them linked through `next`, to ready once the lock is released.
Waiter* end_waits(BarrierCore* b, Outcome o) noexcept {
    Waiter* wake = nullptr;
    while (!b->waiting.empty()) {
        Waiter* w = b->waiting.pop_front();
        if (!runtime::complete_locked(w->parker, w->token, encode(o, 0))) continue;  // (the detector's)
        w->next = wake;
        wake = w;
    }
    return wake;
}

// phase_done: every enrolled member has arrived (lock held).
Waiter* phase_done(BarrierCore* b) noexcept {
    b->arrived = 0;
    ++b->phase;
    return end_waits(b, Outcome::Done);
}

}  // namespace

BarrierCore* barrier_create(std::string_view name) {
    (void)runtime::current();  // (a possible waker from now on: see channels::create)
    auto* b = runtime::arena_new<BarrierCore>();
    const std::size_t n = std::min(name.size(), sizeof b->name - 1);
    std::memcpy(b->name, name.data(), n);
    b->name[n] = '\0';
    return b;
}

void barrier_acquire(BarrierCore* b) noexcept { b->refs.fetch_add(1, std::memory_order_relaxed); }

void barrier_release(BarrierCore* b) noexcept {
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) runtime::arena_delete(b);
}

void barrier_enrol(BarrierCore* b) noexcept {
    Locked<SharedLock> hold(b->lock);
    ++b->enrolled;
}

void barrier_resign(BarrierCore* b) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        --b->enrolled;
        if (!b->poisoned && b->arrived > 0 && b->arrived >= b->enrolled) wake = phase_done(b);
    }
    ready_waiters(wake);
}

Outcome barrier_sync(BarrierCore* b) noexcept {
    b->lock.lock();
    if (b->poisoned) {
        b->lock.unlock();
        return Outcome::Poisoned;
    }
    if (++b->arrived >= b->enrolled) {
        Waiter* wake = phase_done(b);
        b->lock.unlock();
        ready_waiters(wake);
        if (runtime::tracing()) runtime::trace_event("sync", b->name);
        return Outcome::Done;
    }
    runtime::Parker* me = runtime::current();
    Waiter* w = solo_waiter(me, &b->lock);
    b->waiting.push(w);
    const std::uint32_t word = runtime::park(me, runtime::WaitKind::Blocked, &b->reason, runtime::unlocking(b->lock));
    me->completer_lock = nullptr;
    const Outcome o = outcome_part(word);
    if (o == Outcome::Deadlocked) {
        // (The detector does not dequeue; this member has not arrived after all.)
        Locked<SharedLock> hold(b->lock);
        if (w->queued) {
            b->waiting.remove(w);
            --b->arrived;
        }
    }
    if (o == Outcome::Done && runtime::tracing()) runtime::trace_event("sync", b->name);
    return o;
}

void barrier_poison(BarrierCore* b) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        if (b->poisoned) return;
        b->poisoned = true;
        if (runtime::tracing()) runtime::trace_event("poison", b->name);
        wake = end_waits(b, Outcome::Poisoned);
    }
    ready_waiters(wake);
}

}  // namespace csp::channels
