// barrier.cpp: the barrier core (see barrier.hpp).
#include "channels/barrier.hpp"

#include "channels/crossing.hpp"
#include "channels/remote.hpp"
#include "runtime/arena.hpp"
#include "runtime/log.hpp"
#include "runtime/scheduler.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SharedLock;

// end_head: the head of q (b->waiting: a member, won as every completer of
// its wait holds this lock; b->offers: a choice's offer, won by CAS) goes on
// with `o` (lock held): dequeued, and onto *wake to be readied once the lock
// is released; one of another OS process is readied at once, named
// in_flight from before its wait is won until then (so that the repair can
// finish it should this OS process die on the way). One whose wait ended
// elsewhere (the detector's, or its choice's) is just dequeued.
void end_head(BarrierCore* b, WaiterQueue& q, Outcome o, Waiter** wake) noexcept {
    Waiter* w = q.head;
    runtime::Parker* p = w->parker;
    const std::uint32_t word = encode(o, w->index);
    const bool there = !runtime::local(p);
    if (there) [[unlikely]] b->in_flight = {p, w->token, w->index};
    const bool won = &q == &b->waiting ? runtime::complete_locked(p, w->token, word)
                                       : runtime::try_complete(p, w->token, word);
    q.pop_front();
    if (there) [[unlikely]] {
        if (won) runtime::ready(p);
        b->in_flight.parker = nullptr;
    } else if (won) {
        w->next = *wake;
        *wake = w;
    }
}

// end_waits: every parked member goes on with `o` (lock held); those of
// this OS process linked through `next`, to ready once the lock is released.
Waiter* end_waits(BarrierCore* b, Outcome o) noexcept {
    Waiter* wake = nullptr;
    while (!b->waiting.empty()) end_head(b, b->waiting, o, &wake);
    return wake;
}

// phase_done: every enrolled member has arrived (lock held).
Waiter* phase_done(BarrierCore* b) noexcept {
    b->arrived = 0;
    ++b->phase;
    return end_waits(b, Outcome::Done);
}

// end_reserved: the head of b->reserved, an offer this lock's holder has
// reserved, ends with `o` (as end_head, but its word is this holder's to
// store): dequeued, and onto *wake to be readied once the lock is released;
// one of another OS process is readied first and only
// then dequeued, so that the repair finds it on b->reserved should this OS
// process die before (it rescues it: its own OS process can tell whether
// it was readied). Its choice takes this lock before it touches w again.
void end_reserved(BarrierCore* b, Outcome o, Waiter** wake) noexcept {
    Waiter* w = b->reserved.head;
    runtime::Parker* p = w->parker;
    p->selection.store(runtime::waiting_word(w->token) | encode(o, w->index), std::memory_order_release);
    if (!runtime::local(p)) [[unlikely]] {
        runtime::ready(p);
        b->reserved.pop_front();
        return;
    }
    b->reserved.pop_front();
    w->next = *wake;
    *wake = w;
}

// reserve_offers: every offer's choice reserved (its word to kReserved, so
// that no channel partner can take it meanwhile) and moved to b->reserved;
// false if one went another way (it is dropped). Each is named in_flight
// from before its reservation until it is on b->reserved, so that the
// repair finds it should this OS process die in between. On a barrier
// shared by ranks, only offers of members of epoch <= max_epoch (those the
// home counts; an offer's waiter keeps its member's epoch in `slot`): the
// others stay offered, counted in *skipped.
bool reserve_offers(BarrierCore* b, std::uint64_t max_epoch = UINT64_MAX, std::int64_t* skipped = nullptr) noexcept {
    bool all = true;
    for (Waiter* w = b->offers.head; w;) {
        Waiter* next = w->next;
        if (reinterpret_cast<std::uintptr_t>(w->slot) > max_epoch) {
            ++*skipped;
            w = next;
            continue;
        }
        b->in_flight = {w->parker, w->token, w->index};
        b->offers.remove(w);
        if (runtime::try_complete(w->parker, w->token, runtime::kReserved)) b->reserved.push(w);
        else all = false;  // its choice went another way: stale, dropped
        b->in_flight.parker = nullptr;
        w = next;
    }
    return all;
}

// prepend: the waiters linked through `next` from `list` go before *wake.
void prepend(Waiter* list, Waiter** wake) noexcept {
    while (list) {
        Waiter* next = list->next;
        list->next = *wake;
        *wake = list;
        list = next;
    }
}

// take_back: member w, whose sync the deadlock breaker ended (it does not
// dequeue), has not arrived after all; false if the phase's end took it
// first.
bool take_back(BarrierCore* b, Waiter* w) noexcept {
    Locked<SharedLock> hold(b->lock);
    if (!w->queued) return false;
    b->waiting.remove(w);
    --b->arrived;
    return true;
}

// poison_locked: the barrier is poisoned (lock held); returns the waiters
// of this OS process to ready.
Waiter* poison_locked(BarrierCore* b) noexcept {
    b->poisoned = true;
    if (runtime::tracing()) runtime::trace_event("poison", b->name);
    Waiter* wake = end_waits(b, Outcome::Poisoned);
    while (!b->offers.empty()) end_head(b, b->offers, Outcome::Poisoned, &wake);
    while (!b->reserved.empty()) end_reserved(b, Outcome::Poisoned, &wake);  // (a round across ranks')
    return wake;
}

bool still_waiting(const Waiter* w) noexcept {
    return w->parker->selection.load(std::memory_order_acquire) == runtime::waiting_word(w->token);
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
    if (b->poisoned || b->shared_id) return false;  // (a barrier shared by ranks: its home ends phases)
    drop_ended(b);
    const std::int64_t live = live_offers(b);
    const std::int64_t present = b->arrived + arriving + live;
    if (present == 0 || present < b->enrolled) return false;
    const bool failed = !reserve_offers(b);
    while (!b->reserved.empty()) end_reserved(b, failed ? Outcome::Retired : Outcome::Done, wake);
    if (failed) return false;
    prepend(phase_done(b), wake);
    return true;
}

// finish_for_dead: wait `token` of p, which a holder of the lock that died
// was ending (with the guard at `index`): reserved by it (an offer; a
// reservation of one named in_flight is the dead holder's, unless it died
// in the one store between failing its own and clearing in_flight), ended
// Poisoned and readied; otherwise
// rescued (won here if still waiting; if the dead holder won it, p's OS
// process decides whether it was readied).
void finish_for_dead(runtime::Parker* p, std::uint64_t token, std::uint32_t index) noexcept {
    const std::uint64_t reserved = runtime::waiting_word(token) | runtime::kReserved;
    if (p->selection.load(std::memory_order_acquire) == reserved) {
        p->selection.store(runtime::waiting_word(token) | encode(Outcome::Poisoned, index), std::memory_order_release);
        runtime::ready(p);
        return;
    }
    runtime::rescue(p, token, kIndexMask, index_bits(index), encode(Outcome::Poisoned, index));
}

}  // namespace

bool barrier_fire_locked(BarrierCore* b, bool self, Waiter** wake) noexcept { return fire(b, self ? 1 : 0, wake); }

void repair_barrier(runtime::SharedLock* lock) noexcept {
    static_assert(offsetof(BarrierCore, lock) == 0);
    auto* b = reinterpret_cast<BarrierCore*>(lock);
    runtime::logger().warn("barrier '{}': an OS process died holding its lock; poisoning it", b->name);
    // The wait the dead holder was ending (a member's, or an offer's it was
    // reserving), and the offers it had reserved: each still waiting or
    // reserved is ended Poisoned here; one already ended, perhaps not
    // readied, is rescued (its own OS process can tell).
    if (runtime::Parker* p = b->in_flight.parker) {
        finish_for_dead(p, b->in_flight.token, b->in_flight.index);
        b->in_flight.parker = nullptr;
    }
    while (!b->reserved.empty()) {
        Waiter* w = b->reserved.pop_front();
        finish_for_dead(w->parker, w->token, w->index);
    }
    // (Even if the dead holder had set `poisoned`: it may have died before
    // it ended every wait. Readied with the lock held: the caller of lock()
    // goes on holding it.)
    ready_waiters(poison_locked(b));
}

void barrier_mark_cross(BarrierCore* b) noexcept {
    Locked<SharedLock> hold(b->lock);
    b->crossing.store(true, std::memory_order_relaxed);
}

bool barrier_foreign(const BarrierCore* b) noexcept {
    return b->home != runtime::g_local_inbox && !b->crossing.load(std::memory_order_relaxed);
}

void barrier_misused(BarrierCore* b) noexcept {
    runtime::logger().error("barrier '{}' is used from an OS process it was not handed to; poisoning it", b->name);
    barrier_poison(b);
}

BarrierCore* barrier_create(std::string_view name) {
    (void)runtime::current();  // (a possible waker from now on: see channels::create)
    auto* b = runtime::arena_new<BarrierCore>();
    b->home = runtime::g_local_inbox;
    const std::size_t n = std::min(name.size(), sizeof b->name - 1);
    std::memcpy(b->name, name.data(), n);
    b->name[n] = '\0';
    if (Distribution* d = distribution()) d->barrier_made(b);
    return b;
}

void barrier_acquire(BarrierCore* b) noexcept { b->refs.fetch_add(1, std::memory_order_relaxed); }

void barrier_release(BarrierCore* b) noexcept {
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) runtime::arena_delete(b);
}

std::uint64_t barrier_enrol(BarrierCore* b) noexcept {
    {
        Locked<SharedLock> hold(b->lock);
        // (Stored atomically: a view of the network reads it without the lock.)
        __atomic_store_n(&b->enrolled, b->enrolled + 1, __ATOMIC_RELAXED);
    }
    if (b->shared_id) [[unlikely]] {
        if (Distribution* d = distribution()) return d->barrier_ends_changed(b, +1, 0);
    }
    return 0;
}

void barrier_resign(BarrierCore* b, std::uint64_t epoch) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        __atomic_store_n(&b->enrolled, b->enrolled - 1, __ATOMIC_RELAXED);
        (void)fire(b, 0, &wake);
    }
    ready_waiters(wake);
    if (b->shared_id) [[unlikely]] {
        if (Distribution* d = distribution()) (void)d->barrier_ends_changed(b, -1, epoch);
    }
}

namespace {
// shared_sync: a sync of a barrier shared by ranks: the member waits here,
// counted as arrived, and its arrival is reported to the home as it parks;
// the home ends the phase (barrier_end_phase).
Outcome shared_sync(BarrierCore* b, std::uint64_t epoch) noexcept {
    // (A multiprocess child has no MPI; after the World, no rank is there.)
    if (b->home != runtime::g_local_inbox || !distribution()) return Outcome::Unsupported;
    b->lock.lock();
    if (b->poisoned) {
        b->lock.unlock();
        return Outcome::Poisoned;
    }
    ++b->arrived;
    runtime::Parker* me = runtime::current();
    Waiter* w = solo_waiter(me, &b->lock);
    b->waiting.push(w);
    struct Arrival {
        SharedLock* lock;
        std::uint64_t id;
        std::uint64_t phase;
        std::uint64_t epoch;
    } arrival{&b->lock, b->shared_id, b->phase, epoch};
    runtime::Runtime& rt = runtime::started();
    rt.rank_waits.fetch_add(1, std::memory_order_relaxed);  // (idle workers stay awake a while)
    const std::uint32_t word = runtime::park(
        me, runtime::WaitKind::Rank, &b->reason,
        runtime::Release{[](void* arg) noexcept {
                             // (Read before unlocking: once unlocked the member may be
                             // ended and gone, and with it this record.)
                             const Arrival a = *static_cast<const Arrival*>(arg);
                             a.lock->unlock();
                             if (Distribution* d = distribution()) d->barrier_arrived(a.id, a.phase, a.epoch, +1);
                         },
                         &arrival});
    rt.rank_waits.fetch_sub(1, std::memory_order_relaxed);
    me->completer_lock = nullptr;
    const Outcome o = outcome_part(word);
    if (o == Outcome::Deadlocked && take_back(b, w)) {
        if (Distribution* d = distribution()) d->barrier_arrived(arrival.id, arrival.phase, arrival.epoch, -1);
    }
    if (o == Outcome::Done && runtime::tracing()) runtime::trace_event("sync", b->name);
    return o;
}
}  // namespace

void barrier_end_phase(BarrierCore* b, std::uint64_t phase) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        if (b->poisoned) return;
        if (phase != b->phase) {
            runtime::logger().error("barrier '{}': phase {} ended by its home, but this rank is in phase {}",
                                    b->name, phase, b->phase);
            return;
        }
        while (!b->reserved.empty()) end_reserved(b, Outcome::Done, &wake);  // (the offers of this phase)
        prepend(phase_done(b), &wake);
        // Offers still here wait for the next phase: the home hears of them again.
        if (!b->offers.empty()) barrier_offers_changed(b);
    }
    ready_waiters(wake);
}

void barrier_offers_changed(BarrierCore* b) noexcept {
    Distribution* d = distribution();
    if (!b->shared_id || !d) return;
    std::int64_t count = 0, ahead = 0;
    for (const Waiter* w = b->offers.head; w; w = w->next) {
        ++count;
        if (reinterpret_cast<std::uintptr_t>(w->slot) > b->home_epoch) ++ahead;
    }
    d->barrier_offers(b, b->phase, count, ahead, ++b->offer_reports);
}

std::int64_t barrier_reserve_round(BarrierCore* b, std::uint64_t phase, std::uint64_t home_epoch,
                                   std::int64_t* skipped) noexcept {
    *skipped = 0;
    Locked<SharedLock> hold(b->lock);
    if (b->poisoned || phase != b->phase) return 0;
    b->home_epoch = std::max(b->home_epoch, home_epoch);
    (void)reserve_offers(b, home_epoch, skipped);
    std::int64_t reserved = 0;
    for (const Waiter* w = b->reserved.head; w; w = w->next) ++reserved;
    return reserved;
}

void barrier_release_round(BarrierCore* b) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        while (!b->reserved.empty()) end_reserved(b, Outcome::Retired, &wake);
        barrier_offers_changed(b);
    }
    ready_waiters(wake);
}

namespace {
// poison_here: b poisoned in this OS process; false if it was already.
bool poison_here(BarrierCore* b) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(b->lock);
        if (b->poisoned) return false;
        wake = poison_locked(b);
    }
    ready_waiters(wake);
    return true;
}
}  // namespace

void barrier_poisoned_elsewhere(BarrierCore* b) noexcept { (void)poison_here(b); }

Outcome barrier_sync(BarrierCore* b, std::uint64_t epoch) noexcept {
    if (b->shared_id) [[unlikely]] return shared_sync(b, epoch);
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
    const runtime::WaitKind kind =
        b->crossing.load(std::memory_order_relaxed) ? runtime::WaitKind::Remote : runtime::WaitKind::Blocked;
    const std::uint32_t word = runtime::park(me, kind, &b->reason, runtime::unlocking(b->lock));
    me->completer_lock = nullptr;
    const Outcome o = outcome_part(word);
    if (o == Outcome::Deadlocked) (void)take_back(b, w);
    if (o == Outcome::Done && runtime::tracing()) runtime::trace_event("sync", b->name);
    return o;
}

void barrier_poison(BarrierCore* b) noexcept {
    if (poison_here(b) && b->shared_id) [[unlikely]] {
        if (Distribution* d = distribution()) d->barrier_poisoned(b);
    }
}

}  // namespace csp::channels
