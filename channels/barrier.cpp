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

bool still_waiting(const Waiter* w) noexcept {
    return w->parker->selection.load(std::memory_order_acquire) == runtime::waiting_word(w->token);
}

// end_reserved: offer w, reserved by this caller, ends with `o`; onto *wake.
void end_reserved(Waiter* w, Outcome o, Waiter** wake) noexcept {
    w->parker->selection.store(runtime::waiting_word(w->token) | encode(o, w->index), std::memory_order_release);
    w->next = *wake;
    *wake = w;
}

// live_offers: the offers still waiting (stale ones dropped).
std::int64_t live_offers(BarrierCore* b) noexcept {
    std::int64_t live = 0;
    for (Waiter* w = b->offers.head; w;) {
        Waiter* next = w->next;
        if (still_waiting(w)) ++live;
        else b->offers.remove(w);
        w = next;
    }
    return live;
}

// drop_ended: members whose sync the deadlock breaker ended (it does not
// dequeue) have not arrived after all (their own clean-up sees them gone).
void drop_ended(BarrierCore* b) noexcept {
    for (Waiter* w = b->waiting.head; w;) {
        Waiter* next = w->next;
        if (!still_waiting(w)) {
            b->waiting.remove(w);
            --b->arrived;
        }
        w = next;
    }
}

// fire: the phase may end (lock held); see barrier_fire_locked.
bool fire(BarrierCore* b, std::int64_t arriving, Waiter** wake) noexcept {
    if (b->poisoned) return false;
    drop_ended(b);
    const std::int64_t live = live_offers(b);
    const std::int64_t present = b->arrived + arriving + live;
    if (present == 0 || present < b->enrolled) return false;
    // Reserve every offer; those reserved leave the queue (onto `reserved`).
    Waiter* reserved = nullptr;
    bool failed = false;
    while (!b->offers.empty()) {
        Waiter* w = b->offers.pop_front();
        if (runtime::try_complete(w->parker, w->token, runtime::kReserved)) {
            w->next = reserved;
            reserved = w;
        } else {
            failed = true;  // its choice went another way: stale
        }
    }
    for (Waiter* w = reserved; w;) {
        Waiter* next = w->next;
        end_reserved(w, failed ? Outcome::Retired : Outcome::Done, wake);
        w = next;
    }
    if (failed) return false;
    Waiter* members = phase_done(b);
    while (members) {
        Waiter* next = members->next;
        members->next = *wake;
        *wake = members;
        members = next;
    }
    return true;
}

}  // namespace

bool barrier_fire_locked(BarrierCore* b, bool self, Waiter** wake) noexcept { return fire(b, self ? 1 : 0, wake); }

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
        (void)fire(b, 0, &wake);
    }
    ready_waiters(wake);
}

Outcome barrier_sync(BarrierCore* b) noexcept {
    b->lock.lock();
    if (b->poisoned) {
        b->lock.unlock();
        return Outcome::Poisoned;
    }
    Waiter* wake = nullptr;
    if (fire(b, 1, &wake)) {
        b->lock.unlock();
        ready_waiters(wake);
        if (runtime::tracing()) runtime::trace_event("sync", b->name);
        return Outcome::Done;
    }
    ++b->arrived;
    runtime::Parker* me = runtime::current();
    Waiter* w = solo_waiter(me, &b->lock);
    b->waiting.push(w);
    // Offers released by a phase that could not end come round again (they
    // may end it then): readied now, as this member is about to park (they
    // find the lock once it has).
    ready_waiters(wake);
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
        while (!b->offers.empty()) {
            Waiter* w = b->offers.pop_front();
            if (!runtime::try_complete(w->parker, w->token, encode(Outcome::Poisoned, w->index))) continue;
            w->next = wake;
            wake = w;
        }
    }
    ready_waiters(wake);
}

}  // namespace csp::channels
