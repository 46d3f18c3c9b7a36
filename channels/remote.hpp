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
// A choice over a replica (alternation.cpp) cannot win a partner's wait at
// the home, nor can the home win the chooser's selection word on another
// rank, so it goes in two steps (docs/internals.md, "Alternation across
// ranks"). First it tries each remote guard in turn (try_read, try_write:
// done at the home only if a partner is there now; the chooser is queued
// nowhere meanwhile, so a success is final). If nothing was ready it parks
// and offers each remote guard to its home (RemoteChoice): there the offer
// is a waiter marked `offer`, which completers pass over and report
// (Distribution::wanted). The home then reserves the chooser (its rank's
// communication thread moves the selection word from waiting to
// runtime::kReserved, which no other completer can win), completes the
// guard as an ordinary proxy's operation, and fires it (the word gets its
// outcome, and the chooser is readied); or, when the partner has gone
// meanwhile, releases it (the chooser chooses again). Two offers meet the
// same way, each reserved by the home before they complete.
//
// Ends: the ends of a shared channel are counted by the Distribution for the
// whole job (ends_changed, for every join and leave on every rank), and the
// home retires a side when none is left anywhere (retire_side).
//
// The transport (mpi/) implements Remote and installs a Distribution; the
// core library knows no MPI.
#pragma once

#include "channels/barrier.hpp"
#include "channels/channel.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace csp::channels {

// kNotReady: what try_read / try_write say when nothing is there now.
inline constexpr Outcome kNotReady = static_cast<Outcome>(0);

// RemoteChoice: a choice's wait while it has offers at other ranks' homes
// (in the chooser's frame; the transport fills what the home sends).
struct RemoteChoice {
    runtime::Parker* parker = nullptr;
    std::uint64_t token = 0;  // the wait
    Parcel* got = nullptr;    // the value of the input guard that fired (to free)
    bool released = false;    // a home released it: choose again (the word says Retired)
    // Set once every offer is posted (the chooser may wake before: it waits
    // for this before its frame goes).
    std::atomic<bool> posted{false};
    // (The transport's:) the request, and the homes offered to.
    std::uint64_t req = 0;
    std::uint64_t homes = 0;  // bit r % 64 for rank r
};

// Remote: what a replica does instead of touching state it does not have.
class Remote {
public:
    // read / write: the operation, done at the home (the caller waits).
    virtual Outcome read(ChannelCore* c, void* dst) const noexcept = 0;
    virtual Outcome write(ChannelCore* c, void* src) const noexcept = 0;
    // poison: poison the channel at its home (asynchronously).
    virtual void poison(ChannelCore* c) const noexcept = 0;

    // try_read / try_write: the operation at the home if it can be done at
    // once (the caller waits for the answer): Done (a reader's value
    // constructed in *dst), Poisoned, Retired, Deadlocked (the wait for the
    // answer was broken), Unsupported (as read), or kNotReady. A writer's
    // value is packed (it stays the caller's).
    virtual Outcome try_read(ChannelCore* c, void* dst) const noexcept = 0;
    // try_read_extended: an extended read at the home if a value is within
    // reach now: Done with held->remote naming the hold (end_extended),
    // otherwise as try_read.
    virtual Outcome try_read_extended(ChannelCore* c, void* dst, Held* held) const noexcept = 0;
    virtual Outcome try_write(ChannelCore* c, const Parcel* value) const noexcept = 0;
    // read_extended: an extended read at the home (the caller waits): Done
    // with the value in *dst, and held->remote naming what the home holds
    // for it until end_extended; otherwise as read.
    virtual Outcome read_extended(ChannelCore* c, void* dst, Held* held) const noexcept = 0;
    // end_extended: the reader's action is over (ok) or threw: the home
    // completes the writer and frees the slot, or poisons the channel.
    virtual void end_extended(ChannelCore* c, const Held* held, bool ok) const noexcept = 0;
    // retired: `side` of c is retired for a guard (a reader's: and empty);
    // false when poisoned (asks the home; the caller waits).
    virtual bool retired(ChannelCore* c, Side side) const noexcept = 0;

    // A choice's offers: open before the chooser parks, offer (from its
    // park's release, once it is parked), close once it has woken.
    virtual void open(RemoteChoice& rc) const noexcept = 0;
    // (extended: an ExtendedInputGuard's offer: the home holds what it takes
    // for it until end_extended, the hold named by rc.req.)
    virtual void offer(RemoteChoice& rc, ChannelCore* c, Side side, std::uint32_t index, const Parcel* value,
                       bool extended = false) const noexcept = 0;
    virtual void close(RemoteChoice& rc) const noexcept = 0;

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
    // wanted: a completer passed over offer p's waiter (an offer of a
    // remote choice, at its home): a partner may be there. Called under the
    // channel's lock, from any thread; once per offer.
    virtual void wanted(runtime::Parker* p) noexcept = 0;

    // Barriers (barrier.hpp, "across MPI ranks"): b was just made (it is
    // shared by ranks if it gets a shared_id); a member of shared barrier b
    // enrolled (+1) or resigned (-1) here; `delta` members arrived (+1) in
    // phase `phase` here, or an arrival was taken back (-1: the deadlock
    // breaker ended its wait); b was poisoned here.
    virtual void barrier_made(BarrierCore* b) noexcept = 0;
    // (barrier_ends_changed returns the member's epoch: see barrier_enrol;
    // a resign, -1, is given the member's epoch back.)
    virtual std::uint64_t barrier_ends_changed(BarrierCore* b, int delta, std::uint64_t epoch) noexcept = 0;
    // (barrier_arrived names b by its id, and gives the member's epoch: it
    // is called as the member parks, when b may already be gone.)
    virtual void barrier_arrived(std::uint64_t id, std::uint64_t phase, std::uint64_t epoch, int delta) noexcept = 0;
    virtual void barrier_poisoned(BarrierCore* b) noexcept = 0;
    // `count` choices offer b here in phase `phase` (the `seq`-th report of
    // b's offers here: a later one supersedes it), `ahead` of them for
    // members enrolled past b->home_epoch. Called with b's lock held.
    virtual void barrier_offers(const BarrierCore* b, std::uint64_t phase, std::int64_t count, std::int64_t ahead,
                                std::uint64_t seq) noexcept = 0;

    // Views of the network across ranks (csp::write_graph).
    // channel_key: how a view's part names channel c: one shared by ranks
    // by its id in the job (every rank has a core of its own), any other by
    // its address tagged with the rank (each rank has an arena of its own;
    // its OS processes share it). c is only compared, never read through (it
    // may be gone: the channel of an end a process was called with). Takes
    // no lock but a leaf one, and none in a forked child.
    virtual std::uint64_t channel_key(const void* c) const noexcept = 0;
    // view_ranks: the titled parts (runtime::AcrossPart) of every rank, in
    // rank order: this one's are `own` (its OS processes: every one's when
    // it has children, else empty, and then its own part is made here);
    // every other rank is asked for its part and waited for up to `wait`
    // (one that has not answered by then comes titled so, with no part).
    // Empty when there are no other ranks to ask.
    virtual std::vector<std::pair<std::string, std::string>> view_ranks(
        std::vector<std::pair<std::string, std::string>> own, std::chrono::milliseconds wait) = 0;

    // launching: a combinator (Parallel, Sequence's steps, Spawn) is about to
    // start its processes, from the caller's thread. (libcsp-mpi chooses the
    // home ranks of the shared channels made since the last one here.)
    virtual void launching() noexcept {}

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
Attempt offer_read(ChannelCore* c, runtime::Parker* p, Parcel** got, bool want = true) noexcept;
Attempt offer_write(ChannelCore* c, runtime::Parker* p, Parcel* value, bool want = true) noexcept;
// offer_extended: a proxy's extended read (channel.hpp, "Extended
// rendezvous") of c at its home: Done when a value is within reach, its
// parcel in *got (to free) and what delivered it in *held, until
// end_extended; otherwise (Block) p's waiter is queued as a probe, and p is
// readied when a value may be there (Done: call it again) or the channel is
// poisoned or retired.
Attempt offer_extended(ChannelCore* c, runtime::Parker* p, Parcel** got, Held* held) noexcept;
// pass_on_wake: a probe woken on c goes without looking: the next probe
// there is woken in its place.
void pass_on_wake(ChannelCore* c) noexcept;

// (want: whether completers in offer_* report the offers they pass over;
// not for a try, which would only make them churn.)
//
// offer_choice: the offer of a remote choice's guard on `side` of c (p's
// waiter is queued as an offer; a writer's takes `value`), unless the side
// is poisoned or retired for it (Poisoned, Retired; `value` is freed).
// *partner: something is there it might complete with (wanted at once);
// *offers: offers (of other choices, or of its own) wait on the other side.
Attempt offer_choice(ChannelCore* c, Side side, runtime::Parker* p, Parcel* value, bool* partner,
                     bool* offers) noexcept;
// commit_offer: the chooser of offer p is reserved: its waiter becomes an
// ordinary proxy's, and does what offer_read / offer_write would (Block:
// queued again, to be cancelled or completed; Busy: the same, and a partner
// there may be back soon: *busy, a choice of this rank reserved by a home,
// or released and about to choose again, in wait `token`; its parker has a
// reference for the caller, to give back with release_parker). Gone: it was
// completed meanwhile (poison, retire): p is readied with that. Call it
// again for an offer that is queued again, to look once more.
enum class Commit { Done, Poisoned, Retired, Block, Busy, Gone };
Commit commit_offer(ChannelCore* c, Side side, runtime::Parker* p, Parcel** got, Busy* busy) noexcept;
// commit_extended_offer: the same for the offer of an ExtendedInputGuard:
// it takes a value as offer_extended does (Done: what delivered it held in
// *held until end_extended), or waits as a probe (Block; readied Done when
// a value may be within reach: call it again with `woken`).
Commit commit_extended_offer(ChannelCore* c, runtime::Parker* p, Parcel** got, Held* held,
                             bool woken = false) noexcept;
// side_retired: for a guard on `side` (at the home).
bool side_retired(ChannelCore* c, Side side) noexcept;

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
