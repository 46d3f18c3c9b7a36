// barrier.hpp: the type-erased barrier core (csp::Barrier, csp/barrier.hpp).
//
// A barrier has enrolled members; sync waits until every enrolled member has
// synced in this phase, and the last one to arrive ends the phase for all.
// A member that resigns leaves; a phase that waited only for it ends then.
// Poison ends every waiting sync and every later one with Poisoned. The
// waiters are the channel layer's (one solo Waiter in the process's
// PlainWait, won under the barrier's lock), so the deadlock detector ends a
// barrier wait like any other Blocked wait, and its report names the barrier.
//
// Across OS processes (barrier_mark_cross, before a forked child may use
// it): the core is in the shared arena, its lock a SharedLock, and a member
// or offer of another OS process is woken through its inbox, as on a
// channel. Such a waiter is won and readied before the lock is released
// (named in `in_flight`, or kept on `reserved` until readied), so that if the
// holder dies on the way, the lock's repair (repair_barrier: it poisons the
// barrier) finishes its wait. A wait at a barrier that crosses is Remote to
// the deadlock detector (a member there may still come).
//
// Across MPI ranks (a barrier made in the SPMD part while a World exists:
// shared_id): each rank's core holds its own members, and the phase is the
// home rank's to end (mpi/channels.cpp, "barriers across ranks"). A member's
// sync here counts it as arrived and reports the arrival (Distribution::
// barrier_arrived) before it parks; the home ends the phase when the
// arrivals reported for it make up every member of the job, and each rank
// then ends its waiting members (barrier_end_phase). Enrol and resign are
// reported too (barrier_ends_changed), and poison goes to every rank.
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

// repair_barrier: the Repair of a barrier's lock (an OS process died holding
// it): the waits it was ending are finished and the barrier is poisoned.
void repair_barrier(runtime::SharedLock* lock) noexcept;

struct BarrierCore {
    runtime::SharedLock lock{&repair_barrier};  // (first: repair_barrier finds the barrier from it)
    InFlight in_flight;            // a member being ended, or an offer being reserved
    WaiterQueue waiting;           // members synced in this phase, parked
    WaiterQueue offers;            // choices offering it (BarrierGuard), parked
    WaiterQueue reserved;          // offers the lock's holder has reserved, to end before it unlocks
    std::int64_t enrolled = 0;     // members now (stored with __atomic_store_n: read without the lock by views)
    std::int64_t arrived = 0;      // of them, synced in this phase
    std::uint64_t phase = 0;       // phases completed
    bool poisoned = false;
    // Members may be in other OS processes: set under the lock, never unset.
    std::atomic<bool> crossing{false};
    runtime::Inbox* home = nullptr;     // the OS process that made it
    // Processes placed on other MPI ranks, still running, that took ends or
    // handles of it (csp::detail::PlacedElsewhere): while any runs, it
    // cannot be synced here.
    std::atomic<std::int64_t> elsewhere{0};
    std::uint64_t shared_id = 0;        // shared by MPI ranks (see the top): its id in the job
    std::atomic<std::uint64_t> spmd_ends{0};  // (shared) ends made in this rank's SPMD part (mpi/channels.cpp)
    std::uint64_t offer_reports = 0;          // (shared) reports of this rank's offers so far (barrier_offers_changed)
    std::uint64_t home_epoch = 0;             // (shared) the home's epoch in its last round here (barrier_reserve_round)
    std::atomic<std::int64_t> refs{1};  // the handle(s) and ends
    char name[64];
    runtime::WaitReason reason{"is waiting at barrier", name, this, runtime::Subject::Barrier};
};

BarrierCore* barrier_create(std::string_view name);
void barrier_acquire(BarrierCore* b) noexcept;
void barrier_release(BarrierCore* b) noexcept;

// enrol / resign: a member joins or leaves (resign may end the phase).
// enrol returns the member's epoch: on a barrier shared by ranks, how many
// SPMD ends of it this rank had made (the home counts the member once it has
// made as many, or, if this rank is behind it, once this rank says it made
// it: mpi/channels.cpp's RankEnds); 0 otherwise. resign is given it back.
std::uint64_t barrier_enrol(BarrierCore* b) noexcept;
void barrier_resign(BarrierCore* b, std::uint64_t epoch = 0) noexcept;
// sync: Done when the phase ended, Poisoned, or Deadlocked (the detector
// ended the wait; the member is no longer counted as arrived). `epoch`: the
// member's, from enrol.
Outcome barrier_sync(BarrierCore* b, std::uint64_t epoch = 0) noexcept;
void barrier_poison(BarrierCore* b) noexcept;

// barrier_fire_locked: for the alternation engine, with b->lock held: the
// caller (if `self`, a member arriving now: a choice with a BarrierGuard)
// and the members waiting make up the phase: it ends (true), every waiting
// member and offer ended Done and linked through `next` onto *wake, to be
// readied once the locks are released. False: not yet (stale offers are
// dropped; reserved ones released, also onto *wake).
bool barrier_fire_locked(BarrierCore* b, bool self, Waiter** wake) noexcept;

// barrier_end_phase: (shared by ranks) the home ended phase `phase` of b:
// the members waiting here go on (Done). A stale phase is ignored.
void barrier_end_phase(BarrierCore* b, std::uint64_t phase) noexcept;
// barrier_poisoned_elsewhere: (shared by ranks) another rank poisoned b.
void barrier_poisoned_elsewhere(BarrierCore* b) noexcept;
// Alting barriers shared by ranks: the home gathers how many offers each
// rank has (barrier_offers_changed, with b's lock held, whenever a choice
// queues or takes back an offer here), and when they may end the phase it
// reserves them: barrier_reserve_round reserves every offer here (moved to
// b->reserved) and says how many, for phase `phase` (0 if b is in another);
// then the phase ends (barrier_end_phase, which ends them Done) or they are
// released (barrier_release_round: ended Retired, their choices choose again).
// (An offer's waiter keeps its member's epoch in `slot`; a round reserves
// only the offers of members the home counts: epoch <= home_epoch.)
void barrier_offers_changed(BarrierCore* b) noexcept;
std::int64_t barrier_reserve_round(BarrierCore* b, std::uint64_t phase, std::uint64_t home_epoch,
                                   std::int64_t* skipped) noexcept;
void barrier_release_round(BarrierCore* b) noexcept;

// barrier_mark_cross: b may now be used from a forked OS process too (call
// before that process can use it).
void barrier_mark_cross(BarrierCore* b) noexcept;
// barrier_foreign: b was never handed to this OS process (it reached it
// through a reference or a global), so this OS process is not counted among
// its users; barrier_misused poisons it (its members must not wait for a
// member nobody counts) and logs why.
// (Not inline: user code calls it, and runtime::g_local_inbox is libcsp's.)
bool barrier_foreign(const BarrierCore* b) noexcept;
void barrier_misused(BarrierCore* b) noexcept;

}  // namespace csp::channels
