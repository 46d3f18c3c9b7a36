// barrier.hpp: the type-erased barrier core (csp::Barrier, csp/barrier.hpp).
//
// A barrier has enrolled members; sync waits until every enrolled member has
// synced in this phase, and the last one to arrive ends the phase for all.
// A member that resigns leaves; a phase that waited only for it ends then.
// Poison ends every waiting sync and every later one with Poisoned. The
// waiters are the channel layer's (one solo Waiter in the process's
// PlainWait, won under the barrier's lock), so the deadlock detector ends a
// barrier wait like any other Blocked wait, and its report names the barrier.
// (One OS process for now: a BarrierEnd cannot be handed to a
// csp::multiprocess.)
//
// Alting barriers (csp::BarrierGuard): a choice offers the barrier by
// queueing a waiter of its wait on `offers`. The phase ends when the members
// that synced, the live offers and the member arriving now make up every
// enrolled member (Welch's one-phase oracle, with the barrier's lock as the
// oracle's): whoever completes it first reserves every offer (its choice's
// word to runtime::kReserved, so no channel partner can take that choice
// meanwhile) and then ends them all Done. If an offer cannot be reserved (its
// choice went another way), the phase does not end: the offers reserved so
// far are released (ended Retired, which sends a choice round again, to
// offer anew or find the partner that met it reserved).
#pragma once

#include "channels/waiter.hpp"
#include "runtime/shared_lock.hpp"

#include <atomic>
#include <cstdint>
#include <string_view>

namespace csp::channels {

struct BarrierCore {
    runtime::SharedLock lock{nullptr};
    WaiterQueue waiting;           // members synced in this phase, parked
    WaiterQueue offers;            // choices offering it (BarrierGuard), parked
    std::int64_t enrolled = 0;     // members now
    std::int64_t arrived = 0;      // of them, synced in this phase
    std::uint64_t phase = 0;       // phases completed
    bool poisoned = false;
    std::atomic<std::int64_t> refs{1};  // the handle(s) and ends
    char name[64];
    runtime::WaitReason reason{"is waiting at barrier", name};
};

BarrierCore* barrier_create(std::string_view name);
void barrier_acquire(BarrierCore* b) noexcept;
void barrier_release(BarrierCore* b) noexcept;

// enrol / resign: a member joins or leaves (resign may end the phase).
void barrier_enrol(BarrierCore* b) noexcept;
void barrier_resign(BarrierCore* b) noexcept;
// sync: Done when the phase ended, Poisoned, or Deadlocked (the detector
// ended the wait; the member is no longer counted as arrived).
Outcome barrier_sync(BarrierCore* b) noexcept;
void barrier_poison(BarrierCore* b) noexcept;

// barrier_fire_locked: for the alternation engine, with b->lock held: the
// caller (if `self`, a member arriving now: a choice with a BarrierGuard)
// and the members waiting make up the phase: it ends (true), every waiting
// member and offer ended Done and linked through `next` onto *wake, to be
// readied once the locks are released. False: not yet (stale offers are
// dropped; reserved ones released, also onto *wake).
bool barrier_fire_locked(BarrierCore* b, bool self, Waiter** wake) noexcept;

}  // namespace csp::channels
