// remote.hpp: channels whose state lives on another rank (MPI).
//
// One SPMD program runs on every rank and makes its channels in the same
// order, so the k-th channel made outside any process is one channel of the
// whole job. Its state lives on one rank, its home; every other rank holds a
// replica that forwards each operation there (`ChannelCore::remote`). On the
// home, a process of another rank is represented by a proxy: a waiter of a
// parker owned by the rank's communication thread, which offers to read or
// write (offer_read, offer_write) and never blocks; its parker is readied
// like any other, into that thread's inbox, when its offer completes. So the
// home's channel keeps every rule (unbuffered rendezvous, buffers,
// any-to-any, retire and poison, alternation among its own processes)
// without knowing who is remote: a proxy is just a waiter of another OS
// process, and the channel crosses (values travel as parcels).
//
// Ends: the ends of a shared channel are counted by the Distribution for the
// whole job (ends_changed, for every join and leave on every rank), and the
// home retires a side when none is left anywhere (retire_side).
//
// The transport (mpi/) implements Remote and installs a Distribution; the
// core library knows no MPI.
#pragma once

#include "channels/channel.hpp"

namespace csp::channels {

// Remote: what a replica does instead of touching state it does not have.
class Remote {
public:
    // read / write: the operation, done at the home (the caller waits).
    virtual Outcome read(ChannelCore* c, void* dst) const noexcept = 0;
    virtual Outcome write(ChannelCore* c, void* src) const noexcept = 0;
    // poison: poison the channel at its home (asynchronously).
    virtual void poison(ChannelCore* c) const noexcept = 0;

protected:
    ~Remote() = default;
};

// Distribution: what happens to a channel made where channels are shared
// by ranks (installed by the MPI world while it exists).
class Distribution {
public:
    // made: c was just made (before any end of it exists); it is shared by
    // ranks if it gets a shared_id.
    virtual void made(ChannelCore* c) noexcept = 0;
    // ends_changed: an end of shared channel c joined (+1) or left (-1) here.
    virtual void ends_changed(ChannelCore* c, Side side, int delta) noexcept = 0;

protected:
    ~Distribution() = default;
};
// (Atomic: the World sets it on main while workers may be making channels.)
extern std::atomic<Distribution*> g_distribution;
inline Distribution* distribution() noexcept { return g_distribution.load(std::memory_order_acquire); }

// offer_read / offer_write: a proxy's operation on channel c at its home (c
// crosses). Done at once when a partner is there: a reader's value in
// *got, as a parcel to free. Otherwise the proxy's waiter (in p's PlainWait,
// a solo waiter of wait `token`) is queued and p is readied when it
// completes: a reader then finds its value in the waiter's parcel, a writer
// has handed its value over. offer_write takes `value` in any case.
Attempt offer_read(ChannelCore* c, runtime::Parker* p, Parcel** got) noexcept;
Attempt offer_write(ChannelCore* c, runtime::Parker* p, Parcel* value) noexcept;

// proxy_waiter: the waiter offer_* queued for p.
Waiter* proxy_waiter(runtime::Parker* p) noexcept;

// cancel_proxy: take back the offer p has queued on `side` of c, unless it
// has completed. True if taken back: p's wait is ended (not readied), its
// waiter is off the queue and a writer's value freed. (For requests whose
// process has since been ended by a deadlock across ranks: mpi/channels.cpp.)
bool cancel_proxy(ChannelCore* c, Side side, runtime::Parker* p) noexcept;

// retire_side: no rank holds ends of `side` of c any more (at its home).
void retire_side(ChannelCore* c, Side side) noexcept;

}  // namespace csp::channels
