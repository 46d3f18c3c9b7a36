// alternation.cpp: the passes of a choice (see alternation.hpp).
#include "channels/alternation.hpp"

#include "channels/remote.hpp"
#include "runtime/arena.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

namespace csp::channels {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// WaiterBlock: the waiter records of a process's choices, in the arena so
// that partners in other OS processes can reach them. One block per process,
// hung on its parker and reused by every choice (pass 3 guarantees none of
// its waiters is still queued when the next choice starts); it grows when a
// choice has more guards than it holds.
struct WaiterBlock {
    std::size_t capacity;      // waiter records that follow
    std::uint64_t described;   // key of the guard set `what` describes
    char what[192];            // "is blocked in a choice over channels 'a', 'b'": for deadlock reports
    runtime::WaitReason reason;  // {what, nullptr, this, Choice}: set once, when made
    // The first of its enabled channel guards (not retired) and barrier
    // guards, for the views of the network: each a channel's address | 1
    // for an input, or a barrier's address | 2. Relaxed
    // atomics: a view may read them while the next choice writes them (it
    // keeps what it read only if this choice was waiting throughout).
    std::atomic<std::uint32_t> waits{0};
    std::atomic<std::uintptr_t> on[kChoiceWaitsKept];
    Waiter* waiters() noexcept { return reinterpret_cast<Waiter*>(this + 1); }
};
static_assert(alignof(WaiterBlock) >= alignof(Waiter));
static_assert(alignof(ChannelCore) >= 4 && alignof(BarrierCore) >= 4);  // (the low bits of `on`)
static_assert(sizeof(WaiterBlock) % alignof(Waiter) == 0);

WaiterBlock* waiter_block(runtime::Parker* me, std::size_t n) {
    auto* b = static_cast<WaiterBlock*>(me->upper_block);
    if (b && b->capacity >= n) return b;
    const std::size_t capacity = std::max<std::size_t>(n, 8);
    void* mem = runtime::arena_allocate(sizeof(WaiterBlock) + capacity * sizeof(Waiter),
                                        alignof(WaiterBlock));
    runtime::arena_free(me->upper_block);
    b = ::new (mem) WaiterBlock{capacity, 0, {}, {}, {0}, {}};
    b->reason = {b->what, nullptr, b, runtime::Subject::Choice};
    me->upper_block = b;
    return b;
}

// A small, fast generator for random choice order (xorshift64*); quality is
// ample for spreading choices evenly.
std::uint64_t next_random() noexcept {
    // initial-exec: no __tls_get_addr call per number. (A fiber may move to
    // another thread between two numbers; for this generator that is fine.)
    __attribute__((tls_model("initial-exec"))) thread_local std::uint64_t state =
        0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&state) ^
        static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
}

// ChoiceOrder: the order in which the passes try the guards. A random order
// is shuffled lazily (inside-out Fisher-Yates): a choice whose first guard
// tried is ready draws one random number, not n.
class ChoiceOrder {
public:
    ChoiceOrder(std::size_t n, Order how) : order_(n), n_(n), random_(how.kind == Order::Kind::Random) {
        const std::size_t first = how.kind == Order::Kind::RoundRobin && n > 0 ? how.first % n : 0;
        for (std::size_t i = 0; i < n; ++i) {
            std::size_t v = first + i;
            if (v >= n) v -= n;
            order_[i] = static_cast<std::uint32_t>(v);
        }
    }
    // at(k): the k-th guard to try (call with k = 0, 1, 2, ... in turn).
    std::size_t at(std::size_t k) noexcept {
        if (random_ && k >= shuffled_) {
            // j uniform in [k, n): multiply-shift instead of a division.
            // (Simulated: a decision, runtime.hpp.)
            const std::size_t j =
                k + (runtime::simulating() ? runtime::sim_choose(static_cast<std::uint32_t>(n_ - k))
                                           : static_cast<std::size_t>(((next_random() >> 32) * (n_ - k)) >> 32));
            std::swap(order_[k], order_[j]);
            shuffled_ = k + 1;
        }
        return order_[k];
    }

private:
    SmallArray<std::uint32_t> order_;
    std::size_t n_;
    bool random_;
    std::size_t shuffled_ = 0;
};

bool is_channel(const Guard& g) noexcept {
    return g.kind == Guard::Kind::Input || g.kind == Guard::Kind::Output || g.kind == Guard::Kind::ExtendedInput;
}
bool is_barrier(const Guard& g) noexcept { return g.kind == Guard::Kind::Barrier; }
BarrierCore* barrier_of(const Guard& g) noexcept { return static_cast<BarrierCore*>(g.slot); }
bool is_input(const Guard& g) noexcept {
    return g.kind == Guard::Kind::Input || g.kind == Guard::Kind::ExtendedInput;
}
ExtendedSlot* extended_slot(const Guard& g) noexcept { return static_cast<ExtendedSlot*>(g.slot); }

// try_extended: extended input guard g, its channel's lock held.
Attempt try_extended(const Guard& g, Parcel** got) noexcept {
    ExtendedSlot* x = extended_slot(g);
    return try_read_extended_locked(g.core, x->value, &x->held, got);
}
// received_extended: extended input guard g fired with a parcel: unpacked
// into its value, or (false) its hold is let go and the channel poisoned.
bool received_extended(const Guard& g, Parcel* got) noexcept {
    ExtendedSlot* x = extended_slot(g);
    if (receive(g.core, got, x->value)) return true;
    end_extended(g.core, &x->held, false);
    return false;
}

// Locks: the distinct channels (and barriers) of a choice, locked in
// address order.
class Locks {
public:
    struct Entry {
        runtime::SharedLock* lock;
        const char* name;
        bool barrier;
        bool operator<(const Entry& o) const noexcept { return lock < o.lock; }
        bool operator==(const Entry& o) const noexcept { return lock == o.lock; }
    };
    Locks(Guard* guards, std::size_t n) : entries_(n) {
        for (std::size_t i = 0; i < n; ++i) {
            const Guard& g = guards[i];
            if (!g.enabled) continue;
            if (is_channel(g)) entries_[count_++] = {&g.core->lock, g.core->name, false};
            else if (is_barrier(g)) entries_[count_++] = {&barrier_of(g)->lock, barrier_of(g)->name, true};
        }
        std::sort(entries_.begin(), entries_.begin() + count_);
        count_ = static_cast<std::size_t>(std::unique(entries_.begin(), entries_.begin() + count_) - entries_.begin());
    }
    void lock() noexcept {
        for (std::size_t i = 0; i < count_; ++i) entries_[i].lock->lock();
    }
    void unlock() noexcept {
        for (std::size_t i = count_; i > 0; --i) entries_[i - 1].lock->unlock();
    }
    std::uint64_t key() noexcept {
        std::uint64_t k = count_;
        for (std::size_t i = 0; i < count_; ++i) {
            k = k * 0x100000001B3ull ^ reinterpret_cast<std::uintptr_t>(entries_[i].lock);
        }
        return k;
    }
    std::size_t size() const noexcept { return count_; }
    const char* name(std::size_t i) noexcept { return entries_[i].name; }
    bool barrier(std::size_t i) noexcept { return entries_[i].barrier; }

private:
    SmallArray<Entry> entries_;
    std::size_t count_ = 0;
};

// describe writes what the choice waits on, for the deadlock report, when
// the guard set differs from the one described last time; and which channel
// guards it has (their sides may differ from one choice to the next).
const runtime::WaitReason* describe(WaiterBlock* b, Locks& locks, const Guard* guards, std::size_t n) noexcept {
    std::uint32_t waits = 0;
    for (std::size_t i = 0; i < n && waits < kChoiceWaitsKept; ++i) {
        const Guard& g = guards[i];
        if (g.enabled && is_channel(g) && !g.core->retired) {
            b->on[waits++].store(reinterpret_cast<std::uintptr_t>(g.core) | (is_input(g) ? 1u : 0u),
                                 std::memory_order_relaxed);
        } else if (g.enabled && is_barrier(g)) {
            b->on[waits++].store(reinterpret_cast<std::uintptr_t>(barrier_of(g)) | 2u, std::memory_order_relaxed);
        }
    }
    b->waits.store(waits, std::memory_order_relaxed);
    const std::uint64_t key = locks.key();
    if (b->described == key && b->what[0] != '\0') return &b->reason;
    std::size_t used = 0;
    auto put = [&](const char* s) {
        const std::size_t len = std::min(std::strlen(s), sizeof b->what - 1 - used);
        std::memcpy(b->what + used, s, len);
        used += len;
    };
    if (locks.size() == 0) {
        put("is waiting in a choice of timeouts only");
    } else {
        // "over channels 'a', 'b' and barrier 'c'": the channels, then the barriers.
        put("is blocked in a choice over ");
        for (const bool barriers : {false, true}) {
            std::size_t n = 0;
            for (std::size_t i = 0; i < locks.size(); ++i) n += locks.barrier(i) == barriers ? 1 : 0;
            if (n == 0) continue;
            if (barriers && n < locks.size()) put(" and ");
            put(barriers ? (n == 1 ? "barrier " : "barriers ") : (n == 1 ? "channel " : "channels "));
            for (std::size_t i = 0, k = 0; i < locks.size(); ++i) {
                if (locks.barrier(i) != barriers) continue;
                put(k++ > 0 ? "', '" : "'");
                put(locks.name(i));
            }
            put("'");
        }
    }
    b->what[used] = '\0';
    b->described = key;
    return &b->reason;
}

void trace_fired(const Guard& g) noexcept {
    if (!runtime::tracing()) return;
    if (is_input(g)) runtime::trace_event("read", g.core->name);
    if (is_barrier(g)) runtime::trace_event("sync", barrier_of(g)->name);
    if (g.kind == Guard::Kind::Output) runtime::trace_event("write", g.core->name);
}

// wait_kind: what the choice's wait is: Remote when some enabled guard is on
// a channel or barrier shared with another OS process (a partner there may end it: the
// deadlock detector cannot tell), else Rank when one is on a channel shared
// by MPI ranks, else Blocked.
runtime::WaitKind wait_kind(const Guard* guards, std::size_t n) noexcept {
    runtime::WaitKind kind = runtime::WaitKind::Blocked;
    for (std::size_t i = 0; i < n; ++i) {
        const Guard& g = guards[i];
        if (g.enabled && is_barrier(g) && barrier_of(g)->crossing.load(std::memory_order_relaxed)) {
            return runtime::WaitKind::Remote;  // (a member there may still come)
        }
        if (g.enabled && is_barrier(g) && barrier_of(g)->shared_id) {
            kind = runtime::WaitKind::Rank;  // (shared by MPI ranks: its home ends the phase)
            continue;
        }
        if (!g.enabled || !is_channel(g)) continue;
        if (g.core->remote) {  // (a replica: its home is another rank)
            kind = runtime::WaitKind::Rank;
            continue;
        }
        if (!g.core->crossing.load(std::memory_order_relaxed)) continue;
        if (wait_kind_across(g.core) == runtime::WaitKind::Remote) return runtime::WaitKind::Remote;
        kind = runtime::WaitKind::Rank;
    }
    return kind;
}

// retired_locked: g's channel is retired as far as g is concerned (its lock
// held): an output guard's when retired, an input guard's when retired and
// empty (buffered values are still read). A poisoned channel's guard is
// ready, never retired.
bool retired_locked(const Guard& g) noexcept {
    const ChannelCore* c = g.core;
    if (c->poisoned || !c->retired) return false;
    return g.kind == Guard::Kind::Output || c->count == 0;
}

Side side_of(const Guard& g) noexcept { return is_input(g) ? Side::Reader : Side::Writer; }

// RemoteGuards: what the choice knows of its guards on replicas (channels
// whose home is another MPI rank, remote.hpp): Unknown until tried, then
// Live, or Retired (for good: a retired side stays so). Costs nothing while
// no guard is on a replica.
class RemoteGuards {
public:
    enum State : std::uint8_t { Unknown, Live, Retired };
    explicit RemoteGuards(std::size_t n) noexcept : states_(n), n_(n) {}
    bool any() const noexcept { return any_; }
    State at(std::size_t i) noexcept { return any_ ? static_cast<State>(states_[i]) : Unknown; }
    void set(std::size_t i, State s) noexcept {
        if (!any_) {
            std::fill_n(states_.data(), n_, Unknown);
            any_ = true;
        }
        states_[i] = s;
    }
    // retired: guard g (on a replica) is retired; asks its home when not known.
    bool retired(const Guard& g, std::size_t i) noexcept {
        if (at(i) == Unknown && g.core->remote->retired(g.core, side_of(g))) set(i, Retired);
        return at(i) == Retired;
    }

private:
    SmallArray<std::uint8_t> states_;
    std::size_t n_;
    bool any_ = false;
};

// all_retired: the choice has enabled channel guards and every one of them
// is retired (API.md: it throws ChannelRetireException then, even when it
// also has skip or timeout guards). With `locked`, the caller holds every
// guard's lock; otherwise each is taken in turn (pass 0's look, which like
// the rest of pass 0 is not atomic over the channels). A guard on a replica
// is as the choice knows it (or asks).
bool all_retired(const Guard* guards, std::size_t n, bool locked, RemoteGuards& remote) noexcept {
    bool any = false;
    for (std::size_t i = 0; i < n; ++i) {
        const Guard& g = guards[i];
        if (g.enabled && is_barrier(g)) return false;  // (a barrier never retires)
        if (!g.enabled || !is_channel(g)) continue;
        any = true;
        if (g.core->remote) {
            // (Under the locks it is known: pass 0 tried every guard.)
            if (locked ? remote.at(i) != RemoteGuards::Retired : !remote.retired(g, i)) return false;
            continue;
        }
        if (!locked) g.core->lock.lock();
        const bool retired = retired_locked(g);
        if (!locked) g.core->lock.unlock();
        if (!retired) return false;
    }
    return any;
}

// The wait of a choice whose every guard is disabled by its pre-condition,
// with no skip or timeout: occam's STOP. Only the deadlock detector ends it.
constexpr runtime::WaitReason kStop{"is waiting for ever in a choice whose every guard is disabled (STOP)",
                                    nullptr};

// Prepacked: the values of output guards on channels that cross, packed
// before any lock is taken, as a plain write packs its value: one that
// cannot be packed is the chooser's error before anything is sent, and no
// value is serialized under a spin lock. Whatever no partner took is freed
// at the end of the choice. Costs nothing while no output guard crosses.
class Prepacked {
public:
    explicit Prepacked(std::size_t n) noexcept : parcels_(n), n_(n) {}
    Prepacked(const Prepacked&) = delete;
    Prepacked& operator=(const Prepacked&) = delete;
    ~Prepacked() {
        if (!used_) return;
        for (std::size_t i = 0; i < n_; ++i) parcel_free(parcels_[i]);
    }
    // pack: output guard i is about to be tried (no lock held); false if its
    // value cannot be packed.
    bool pack(const Guard& g, std::size_t i) noexcept {
        const Crossing* x = g.core->crossing.load(std::memory_order_relaxed);
        if (!x && !g.core->remote) return true;
        if (!used_) {
            std::fill_n(parcels_.data(), n_, nullptr);
            used_ = true;
        }
        if (parcels_[i]) return true;
        if (x) return x->prepack(g.core, g.slot, &parcels_[i]);
        // A replica's (remote.hpp): the value goes to its home as a parcel.
        parcels_[i] = g.core->ops->pack ? g.core->ops->pack(g.slot) : nullptr;
        return parcels_[i] != nullptr;
    }
    // pack_all: pack() for every enabled output guard.
    std::size_t pack_all(const Guard* guards) noexcept {
        for (std::size_t i = 0; i < n_; ++i) {
            const Guard& g = guards[i];
            if (g.enabled && g.kind == Guard::Kind::Output && !pack(g, i)) return i;
        }
        return kNone;
    }
    // of(i): guard i's parcel, for try_write_locked (null when none crosses).
    Parcel** of(std::size_t i) noexcept { return used_ ? &parcels_[i] : nullptr; }

private:
    SmallArray<Parcel*> parcels_;
    std::size_t n_;
    bool used_ = false;
};

// try_alone tries guard g under its own channel's lock only.
Attempt try_alone(Guard& g, Parcel** pre) noexcept {
    Waiter* wake = nullptr;
    Parcel* got = nullptr;
    g.core->lock.lock();
    Attempt a;
    switch (g.kind) {
        case Guard::Kind::Input: a = try_read_locked(g.core, g.slot, &wake, &got); break;
        case Guard::Kind::ExtendedInput: a = try_extended(g, &got); break;
        default: a = try_write_locked(g.core, g.slot, &wake, pre); break;
    }
    g.core->lock.unlock();
    if (wake) runtime::ready(wake->parker);
    if (got) {
        if (g.kind == Guard::Kind::ExtendedInput) return received_extended(g, got) ? a : Attempt::Poisoned;
        if (!receive(g.core, got, g.slot)) return Attempt::Poisoned;
    }
    return a;
}

// try_remote tries guard i, on a replica, at its home (the caller waits).
Outcome try_remote(Guard& g, Parcel* packed) noexcept {
    if (g.kind == Guard::Kind::Input) return g.core->remote->try_read(g.core, g.slot);
    if (g.kind == Guard::Kind::ExtendedInput) {
        ExtendedSlot* x = extended_slot(g);
        return g.core->remote->try_read_extended(g.core, x->value, &x->held);
    }
    return g.core->remote->try_write(g.core, packed);
}

// receive_remote_extended: extended input guard g on a replica fired with
// the value rc got; its home holds what delivered it, named by rc.req,
// until end_extended (or, if the value cannot be unpacked, lets it go now:
// the channel is poisoned).
Outcome receive_remote_extended(Guard& g, RemoteChoice& rc) noexcept {
    ExtendedSlot* x = extended_slot(g);
    x->held = {};
    x->held.remote = rc.req;
    Parcel* got = std::exchange(rc.got, nullptr);
    const bool ok = got && g.core->ops->unpack && g.core->ops->unpack(got, x->value);
    parcel_free(got);
    if (ok) return Outcome::Done;
    runtime::logger().error("channel '{}': a value from another rank could not be unpacked; poisoning it",
                            g.core->name);
    end_extended(g.core, &x->held, false);
    poison(g.core);
    return Outcome::Poisoned;
}

// Parking: what a choice lets go of once it has parked: the offers of its
// guards on replicas are posted (while the locks still keep its local
// guards from firing), then the locks are released.
struct Parking {
    Locks* locks;
    Guard* guards;
    std::size_t n;
    RemoteChoice* rc;  // null: no offers
    RemoteGuards* remote;
    Prepacked* pre;

    static void release(void* arg) noexcept {
        auto* self = static_cast<Parking*>(arg);
        if (RemoteChoice* rc = self->rc) {
            for (std::size_t i = 0; i < self->n; ++i) {
                Guard& g = self->guards[i];
                if (!g.enabled || !is_channel(g) || !g.core->remote || self->remote->at(i) != RemoteGuards::Live) {
                    continue;
                }
                Parcel** value = g.kind == Guard::Kind::Output ? self->pre->of(i) : nullptr;
                g.core->remote->offer(*rc, g.core, side_of(g), static_cast<std::uint32_t>(i),
                                      value ? *value : nullptr, g.kind == Guard::Kind::ExtendedInput);
            }
            self->locks->unlock();
            // (The chooser may be awake already, waiting for this: after it,
            // nothing of its frame may be touched.)
            rc->posted.store(true, std::memory_order_release);
            return;
        }
        self->locks->unlock();
    }
};

// receive_remote: input guard g on a replica fired with the value rc got.
Outcome receive_remote(Guard& g, RemoteChoice& rc) noexcept {
    Parcel* got = std::exchange(rc.got, nullptr);
    const bool ok = got && g.core->ops->unpack && g.core->ops->unpack(got, g.slot);
    parcel_free(got);
    if (ok) return Outcome::Done;
    runtime::logger().error("channel '{}': a value from another rank could not be unpacked; poisoning it",
                            g.core->name);
    poison(g.core);
    return Outcome::Poisoned;
}

}  // namespace

namespace {
Choice choose_here(Guard* guards, std::size_t n, Order how);
}  // namespace

Choice choose(Guard* guards, std::size_t n, Order how) {
    const Choice c = choose_here(guards, n, how);
    // (Simulated: the chooser may be preempted here, as its partner would
    // run beside it on another worker: runtime/sim.cpp.)
    if (runtime::simulating()) [[unlikely]] runtime::sim_preempt();
    // (A chooser whose output guard or skip fired without waiting (a
    // polling loop, whose writer might never run else) gives way once it has
    // gone on for a slice, as a writer does; after a wait the switch has
    // started the count again. An input guard drains, as a read does.)
    else if (c.index < n && (guards[c.index].kind == Guard::Kind::Output || guards[c.index].kind == Guard::Kind::Skip))
        runtime::went_on();
    return c;
}

namespace {
Choice choose_here(Guard* guards, std::size_t n, Order how) {
    ChoiceOrder order(n, how);
    Prepacked pre(n);
    RemoteGuards remote(n);
    bool has_output = false;  // an enabled output guard (pass 0 visits every guard before pass 1)

    // Pass 0: try each guard in order on its own, locking only its channel.
    // A busy choice usually finds a ready guard here and never locks (or
    // sorts) the others. Not one atomic look at all the channels, but no
    // choice it makes is one the full pass could not have made a moment
    // earlier or later; pass 1 is atomic where it matters, before waiting.
    {
        bool have_now = false;
        bool live = false;  // a channel guard tried could have waited
        Clock::time_point now{};
        // A skip or due timeout fires unless every channel guard is retired.
        const auto non_channel_fires = [&](std::size_t i) -> Choice {
            if (!live && all_retired(guards, n, false, remote)) return {Outcome::Retired, kNone};
            return {Outcome::Done, i};
        };
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t i = order.at(k);
            Guard& g = guards[i];
            if (!g.enabled) continue;
            if (g.kind == Guard::Kind::Skip) return non_channel_fires(i);
            if (g.kind == Guard::Kind::Timeout) {
                if (!have_now) {
                    now = runtime::now();
                    have_now = true;
                }
                if (now >= g.deadline) return non_channel_fires(i);
                continue;
            }
            if (g.kind == Guard::Kind::Barrier) {
                BarrierCore* b = barrier_of(g);
                Waiter* wake = nullptr;
                b->lock.lock();
                const bool poisoned = b->poisoned;
                const bool fired = !poisoned && barrier_fire_locked(b, true, &wake);
                b->lock.unlock();
                ready_waiters(wake);
                if (poisoned) return {Outcome::Poisoned, i};
                if (fired) {
                    trace_fired(g);
                    return {Outcome::Done, i};
                }
                live = true;
                continue;
            }
            Parcel** packed = nullptr;
            if (g.kind == Guard::Kind::Output) {
                has_output = true;
                if (!pre.pack(g, i)) [[unlikely]] return {Outcome::Unpackable, i};
                packed = pre.of(i);
            }
            if (g.core->remote) [[unlikely]] {
                // A replica's: tried at its home (remote.hpp).
                const Outcome o = try_remote(g, packed ? *packed : nullptr);
                if (o == kNotReady) {
                    remote.set(i, RemoteGuards::Live);
                    live = true;
                    continue;
                }
                if (o == Outcome::Retired) {
                    remote.set(i, RemoteGuards::Retired);
                    continue;
                }
                if (o == Outcome::Done) trace_fired(g);
                return {o, o == Outcome::Deadlocked ? kNone : i};
            }
            const Attempt a = try_alone(g, packed);
            if (a == Attempt::Done) {
                trace_fired(g);
                return {Outcome::Done, i};
            }
            if (a == Attempt::Poisoned) return {Outcome::Poisoned, i};
            live |= a == Attempt::Block;
        }
    }

    runtime::Parker* me = runtime::current();
    WaiterBlock* block = waiter_block(me, n);  // allocate before any lock is held
    Locks locks(guards, n);

    for (;;) {
        // (Again after a retire sent the choice back: pass 2's waiters took
        // the values packed for them.)
        if (has_output) {
            if (const std::size_t bad = pre.pack_all(guards); bad != kNone) return {Outcome::Unpackable, bad};
        }
        // Pass 1: lock everything, poll in order.
        std::size_t live = 0;              // enabled channel guards not retired
        std::size_t first_timeout = kNone;  // the enabled timeout due first
        Clock::time_point now{};
        bool have_now = false;
        Choice fired{Outcome::Done, kNone};
        Waiter* wake = nullptr;
        Waiter* barrier_wake = nullptr;  // (a barrier's phase ended, or its offers were released)
        Parcel* got = nullptr;
        locks.lock();
        for (std::size_t k = 0; k < n && fired.index == kNone; ++k) {
            const std::size_t i = order.at(k);
            Guard& g = guards[i];
            if (!g.enabled) continue;
            Attempt a = Attempt::Block;
            if (is_channel(g) && g.core->remote) [[unlikely]] {
                // A replica's: offered once parked (tried in pass 0).
                a = remote.at(i) == RemoteGuards::Retired ? Attempt::Retired : Attempt::Block;
                live += a == Attempt::Block ? 1 : 0;
                continue;
            }
            switch (g.kind) {
                case Guard::Kind::Skip:
                    a = Attempt::Done;
                    break;
                case Guard::Kind::Timeout:
                    if (!have_now) {
                        now = runtime::now();
                        have_now = true;
                    }
                    if (now >= g.deadline) {
                        a = Attempt::Done;
                    } else if (first_timeout == kNone || g.deadline < guards[first_timeout].deadline) {
                        first_timeout = i;
                    }
                    break;
                case Guard::Kind::Input:
                    a = try_read_locked(g.core, g.slot, &wake, &got);
                    break;
                case Guard::Kind::ExtendedInput:
                    a = try_extended(g, &got);
                    break;
                case Guard::Kind::Barrier:
                    if (barrier_of(g)->poisoned) a = Attempt::Poisoned;
                    else if (barrier_fire_locked(barrier_of(g), true, &barrier_wake)) a = Attempt::Done;
                    break;
                case Guard::Kind::Output:
                    a = try_write_locked(g.core, g.slot, &wake, pre.of(i));
                    break;
            }
            switch (a) {
                case Attempt::Done: fired = {Outcome::Done, i}; break;
                case Attempt::Poisoned: fired = {Outcome::Poisoned, i}; break;
                case Attempt::Retired: break;  // disabled
                case Attempt::Block: live += is_channel(g) || is_barrier(g) ? 1 : 0; break;
            }
        }
        if (fired.index != kNone && !is_channel(guards[fired.index]) && live == 0 &&
            all_retired(guards, n, true, remote)) {
            fired = {Outcome::Retired, kNone};  // a skip or timeout, but every channel guard is retired
        }
        if (fired.index != kNone || fired.outcome == Outcome::Retired) {
            locks.unlock();
            ready_waiters(barrier_wake);
            if (fired.index == kNone) return fired;
            if (wake) runtime::ready(wake->parker);
            if (got) {
                const Guard& g = guards[fired.index];
                const bool ok = g.kind == Guard::Kind::ExtendedInput ? received_extended(g, got)
                                                                     : receive(g.core, got, g.slot);
                if (!ok) fired.outcome = Outcome::Poisoned;
            }
            if (fired.outcome == Outcome::Done) trace_fired(guards[fired.index]);
            return fired;
        }
        if (live == 0 && all_retired(guards, n, true, remote)) {
            locks.unlock();
            ready_waiters(barrier_wake);
            return {Outcome::Retired, kNone};
        }
        if (live == 0 && first_timeout == kNone) {
            // Every guard is disabled by its pre-condition: STOP.
            (void)runtime::begin_wait(me);
            const runtime::Release unlock_all{[](void* l) noexcept { static_cast<Locks*>(l)->unlock(); },
                                              &locks};
            const std::uint32_t word = runtime::park(me, runtime::WaitKind::Blocked, &kStop, unlock_all);
            if (outcome_part(word) == Outcome::Deadlocked) return {Outcome::Deadlocked, kNone};
            continue;
        }

        // Pass 2: one wait, one waiter per live channel guard, park. The
        // waiters are queued in the choice's order: where several guards
        // share a channel, a partner arriving later takes the first queued,
        // so queueing in argument order would make a waiting fair choice
        // always give it the first guard (Go's TestPseudoRandomSend).
        ready_waiters(barrier_wake);  // (offers released by pass 1: this choice is about to park)
        const std::uint64_t token = runtime::begin_wait(me);
        Waiter* waiters = block->waiters();
        bool offers = false;  // guards on replicas to offer at their homes
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t i = order.at(k);  // (pass 1 drew the whole order)
            Guard& g = guards[i];
            if (g.enabled && is_barrier(g)) {
                auto* w = ::new (static_cast<void*>(&waiters[i])) Waiter;
                // One offer per barrier: a choice is one member, whatever
                // number of guards it has on it (the first in order speaks).
                bool offered = false;
                for (std::size_t j = 0; j < k && !offered; ++j) {
                    const Guard& h = guards[order.at(j)];
                    offered = h.enabled && is_barrier(h) && barrier_of(h) == barrier_of(g);
                }
                if (offered) continue;
                w->parker = me;
                w->token = token;
                w->index = static_cast<std::uint32_t>(i);
                // (Its member's epoch, for a barrier shared by MPI ranks:
                // barrier_reserve_round.)
                w->slot = reinterpret_cast<void*>(static_cast<std::uintptr_t>(g.epoch));
                barrier_of(g)->offers.push(w);
                if (barrier_of(g)->shared_id) [[unlikely]] barrier_offers_changed(barrier_of(g));
                continue;
            }
            if (!g.enabled || !is_channel(g)) continue;
            auto* w = ::new (static_cast<void*>(&waiters[i])) Waiter;
            if (g.core->remote) [[unlikely]] {
                offers |= remote.at(i) == RemoteGuards::Live;
                continue;  // (offered once parked: Parking)
            }
            if (g.core->retired) continue;  // disabled: not queued
            w->parker = me;
            w->token = token;
            w->index = static_cast<std::uint32_t>(i);
            w->slot = g.slot;
            if (g.kind == Guard::Kind::Output) {
                if (Parcel** p = pre.of(i)) w->parcel = std::exchange(*p, nullptr);
                queue_writer(g.core, w);
                g.core->writers.push(w);
                if (g.core->extended) [[unlikely]] {
                    // (Readied before the locks go: this process is about to park.)
                    if (Waiter* p = wake_probe(g.core, me)) runtime::ready(p->parker);
                }
                continue;
            }
            if (g.kind == Guard::Kind::ExtendedInput) {
                w->probe = true;  // woken when a value is within reach; takes it then
                w->slot = nullptr;
                g.core->extended = true;
                g.core->unusual = true;
            }
            g.core->readers.push(w);
        }
        // The locks are released only once we have parked (the park rule).
        const runtime::WaitReason* what = describe(block, locks, guards, n);
        RemoteChoice rc;
        const Remote* transport = nullptr;
        if (offers) [[unlikely]] {
            rc.parker = me;
            rc.token = token;
            for (std::size_t i = 0; i < n && !transport; ++i) {
                if (guards[i].enabled && is_channel(guards[i])) transport = guards[i].core->remote;
            }
            transport->open(rc);
        }
        Parking parking{&locks, guards, n, offers ? &rc : nullptr, &remote, &pre};
        const runtime::Release unlock_all{&Parking::release, &parking};
        const std::uint32_t word =
            first_timeout == kNone
                ? runtime::park(me, wait_kind(guards, n),
                                what, unlock_all)
                : runtime::park_until(me, token, runtime::WaitKind::Timed, what,
                                      guards[first_timeout].deadline, unlock_all);
        if (offers) [[unlikely]] {
            // Every offer posted before anything here goes; then no answer
            // may touch rc any more, and the homes take the offers back.
            while (!rc.posted.load(std::memory_order_acquire)) __builtin_ia32_pause();
            transport->close(rc);
        }

        // Pass 3: take the waiters that lost off their queues.
        locks.lock();
        for (std::size_t i = 0; i < n; ++i) {
            Guard& g = guards[i];
            if (g.enabled && is_barrier(g)) {
                if (waiters[i].queued) {
                    barrier_of(g)->offers.remove(&waiters[i]);
                    if (barrier_of(g)->shared_id) [[unlikely]] barrier_offers_changed(barrier_of(g));
                }
                continue;
            }
            if (!g.enabled || !is_channel(g)) continue;
            Waiter* w = &waiters[i];
            if (w->queued) (is_input(g) ? g.core->readers : g.core->writers).remove(w);
        }
        locks.unlock();
        // On channels that cross, what the waiters carry: an output guard's
        // own value that nobody took; the value for the input guard that
        // fired, from the other side.
        std::size_t received = kNone;
        for (std::size_t i = 0; i < n; ++i) {
            Guard& g = guards[i];
            if (!g.enabled || !is_channel(g) || !waiters[i].parcel) continue;
            if (g.kind == Guard::Kind::Output) settle(g.core, Side::Writer, &waiters[i], Outcome::Done, nullptr);
            else received = i;  // only a fired input guard gets one
        }

        if (word == runtime::kTimedOut) {
            parcel_free(rc.got);
            return {Outcome::Done, first_timeout};
        }
        Outcome o = outcome_part(word);
        if (received != kNone) {
            o = settle(guards[received].core, Side::Reader, &waiters[received], o, guards[received].slot);
        }
        if (offers && o != Outcome::Deadlocked && is_channel(guards[index_part(word)]) &&
            guards[index_part(word)].core->remote) [[unlikely]] {
            // A guard on a replica fired at its home, or was released there.
            Guard& g = guards[index_part(word)];
            if (o == Outcome::Retired && !rc.released) remote.set(index_part(word), RemoteGuards::Retired);
            if (o == Outcome::Done && g.kind == Guard::Kind::Input) o = receive_remote(g, rc);
            if (o == Outcome::Done && g.kind == Guard::Kind::ExtendedInput) o = receive_remote_extended(g, rc);
        }
        parcel_free(rc.got);
        if (o == Outcome::Retired) {
            // A guard was disabled, or a home released the choice: choose
            // again. (A new wait at once: a home waiting for this choice to
            // come back sees that it has looked, whatever it does next.)
            (void)runtime::begin_wait(me);
            continue;
        }
        if (o == Outcome::Deadlocked) return {o, kNone};
        const std::size_t index = index_part(word);
        if (o == Outcome::Done && guards[index].kind == Guard::Kind::ExtendedInput && !guards[index].core->remote) {
            // A probe woken: a value is within reach; take it now, or, if
            // another took it first, choose again. (A replica's fired at its
            // home, which holds what delivered the value: above.)
            Guard& g = guards[index];
            Parcel* got = nullptr;
            g.core->lock.lock();
            const Attempt a = try_extended(g, &got);
            g.core->lock.unlock();
            if (a == Attempt::Poisoned) return {Outcome::Poisoned, index};
            if (a != Attempt::Done) {
                (void)runtime::begin_wait(me);
                continue;
            }
            if (got && !received_extended(g, got)) return {Outcome::Poisoned, index};
        }
        if (o == Outcome::Done) trace_fired(guards[index]);
        return {o, index};
    }
}
}  // namespace

void waits_of(const runtime::WaitReason* why, std::vector<ChannelWait>* out) {
    if (!why) return;
    switch (why->subject_kind) {
    case runtime::Subject::Read:
        out->push_back({static_cast<const ChannelCore*>(why->subject), Side::Reader});
        break;
    case runtime::Subject::Write:
        out->push_back({static_cast<const ChannelCore*>(why->subject), Side::Writer});
        break;
    case runtime::Subject::Choice: {
        const auto* b = static_cast<const WaiterBlock*>(why->subject);
        const std::uint32_t n = std::min<std::uint32_t>(b->waits.load(std::memory_order_relaxed), kChoiceWaitsKept);
        for (std::uint32_t i = 0; i < n; ++i) {
            const std::uintptr_t w = b->on[i].load(std::memory_order_relaxed);
            if (w & 2u) {
                out->push_back({nullptr, Side::Reader, reinterpret_cast<const BarrierCore*>(w & ~std::uintptr_t{3})});
            } else {
                out->push_back({reinterpret_cast<const ChannelCore*>(w & ~std::uintptr_t{1}), w & 1u ? Side::Reader : Side::Writer});
            }
        }
        break;
    }
    case runtime::Subject::Barrier:
        out->push_back({nullptr, Side::Reader, static_cast<const BarrierCore*>(why->subject)});
        break;
    default:
        break;
    }
}

}  // namespace csp::channels
