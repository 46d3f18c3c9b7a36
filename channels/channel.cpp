// channel.cpp: reads, writes, retire and poison on the type-erased core.
// The invariants and locking rules are at the top of channel.hpp; what
// happens when a partner is on the other side of a boundary is crossing.cpp's,
// reached through the channel's Crossing (c->crossing) at every point where
// that may be so.
#include "channels/channel.hpp"

#include "channels/remote.hpp"

#include "runtime/arena.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SharedLock;

// crossing_of: the channel's Crossing, or null while every partner is in
// this OS process (read under the lock, or before any other OS process can
// use the channel: mark_cross sets it under the lock).
inline const Crossing* crossing_of(const ChannelCore* c) noexcept {
    return c->crossing.load(std::memory_order_relaxed);
}

inline WaiterQueue& queue_of(ChannelCore* c, Side side) noexcept {
    return side == Side::Reader ? c->readers : c->writers;
}

// win ends the wait of dequeued waiter `w` with `o` if nobody else has
// (called under the channel's lock).
inline bool win(Waiter* w, Outcome o) noexcept {
    return w->solo ? runtime::complete_locked(w->parker, w->token, encode(o, w->index))
                   : runtime::try_complete(w->parker, w->token, encode(o, w->index));
}

// take_here pops the oldest waiter of `q` whose wait can still be won,
// winning it with Done for its own position; every waiter of `q` must be of
// this OS process (the channel does not cross). Stale waiters met on the
// way are dropped.
[[gnu::always_inline]] inline Waiter* take_here(WaiterQueue& q) noexcept {
    while (!q.empty()) {
        Waiter* w = q.pop_front();
        if (win(w, Outcome::Done)) [[likely]] return w;
    }
    return nullptr;
}

// in_flight: from before a waiter of another OS process is won until it is
// readied (see channel.hpp's rules).
inline void note_in_flight(ChannelCore* c, const Waiter* w) noexcept {
    c->in_flight = {w->parker, w->token, w->index};
}

// pass_over: offer w of a remote choice (remote.hpp) cannot be completed
// with yet; unless `want` is false, its home hears of a partner once.
[[gnu::noinline]] void pass_over(Waiter* w, bool want) noexcept {
    if (!want || w->wanted) return;
    w->wanted = true;
    if (Distribution* d = distribution()) d->wanted(w->parker);
}

// take: take_here on any channel; a waiter of another OS process is noted
// in flight, and must then be handed to woken() before the lock goes.
// Probes of extended readers, and offers of remote choices, are passed over (and reported, with `want`), as
// are choices that a home on another rank has reserved (runtime::kReserved:
// busy for now, not stale). *busy names a choice met that may soon be back:
// one so reserved, or one released (a choice whose wait ended Retired
// chooses again).
[[gnu::always_inline]] inline Waiter* take(ChannelCore* c, WaiterQueue& q, bool want = true,
                                           Busy* busy = nullptr) noexcept {
    Waiter* w = q.head;
    while (w) {
        Waiter* next = w->next;
        if (w->offer || w->probe) [[unlikely]] {
            if (w->offer) pass_over(w, want);  // (a probe is woken once the writer's value is within reach)
            w = next;
            continue;
        }
        const bool there = !runtime::local(w->parker);
        if (there) [[unlikely]] note_in_flight(c, w);
        if (win(w, Outcome::Done)) [[likely]] {
            q.remove(w);
            return w;
        }
        if (there) c->in_flight.parker = nullptr;
        const std::uint64_t word = w->parker->selection.load(std::memory_order_relaxed);
        const bool reserved = static_cast<std::uint32_t>(word) == runtime::kReserved && word >> 32 == w->token;
        if (!reserved) q.remove(w);  // stale (a reserved one is left queued: it may yet be released)
        if (busy && !busy->parker && !w->solo && word >> 32 == w->token &&
            (reserved || outcome_part(static_cast<std::uint32_t>(word)) == Outcome::Retired)) [[unlikely]] {
            w->parker->refs.fetch_add(1, std::memory_order_relaxed);  // (the caller's: release_parker)
            *busy = {w->parker, w->token, reserved};
        }
        w = next;
    }
    return nullptr;
}

// woken: waiter w, taken, has its value (or has given it): one of this OS
// process is readied once the lock is released (*wake); one of another, now.
inline void woken(ChannelCore* c, Waiter** wake, Waiter* w) noexcept {
    if (runtime::local(w->parker)) [[likely]] {
        *wake = w;
        return;
    }
    runtime::ready(w->parker);
    c->in_flight.parker = nullptr;
}

// Tracing: a flow per value (runtime/trace.hpp), from its writer to its
// reader. A value that enters the channel takes the next of its numbers in,
// one that leaves it (read, or dropped) the next of its numbers out: every
// buffer is FIFO, so a value leaves with the number it came in with. (Off
// the paths that run when nobody traces; lock held.)
inline std::uint64_t flow_id(const ChannelCore* c, std::uint32_t n) noexcept {
    return std::uint64_t{c->trace_number} << 32 | n;
}
[[gnu::noinline, gnu::cold]] void traced_in(ChannelCore* c, const runtime::Parker* writer) noexcept {
    runtime::trace_flow_start(writer, c->name, flow_id(c, c->trace_in++));
}
[[gnu::noinline, gnu::cold]] void traced_out(ChannelCore* c, const runtime::Parker* reader,
                                             const char* how = "read") noexcept {
    runtime::trace_flow_end(reader, c->name, flow_id(c, c->trace_out++), how);
}
// traced_handed: a value handed from writer to reader without the buffer.
[[gnu::noinline, gnu::cold]] void traced_handed(ChannelCore* c, const runtime::Parker* writer,
                                                const runtime::Parker* reader) noexcept {
    traced_in(c, writer);
    traced_out(c, reader);
}
// traced_count: the buffer's occupancy, as a counter.
[[gnu::noinline, gnu::cold]] void traced_count(const ChannelCore* c) noexcept {
    char name[sizeof c->name + 16];
    std::snprintf(name, sizeof name, "buffer '%s'", c->name);
    runtime::trace_counter(name, static_cast<std::int64_t>(c->count));
}
// traced_put: a writer's value went into the buffer.
[[gnu::noinline, gnu::cold]] void traced_put(ChannelCore* c, const runtime::Parker* writer) noexcept {
    traced_in(c, writer);
    traced_count(c);
}
// me: the process the calling thread runs (null for a thread that is none).
inline const runtime::Parker* me() noexcept { return runtime::current_if_known(); }

// end_held ends the wait of writer w, held by an extended reader (taken off
// c->holding, lock held), with o: its word is reserved, or still waiting
// when the reader's OS process died between taking it and winning it.
bool end_held(Waiter* w, Outcome o) noexcept {
    runtime::Parker* p = w->parker;
    const std::uint64_t reserved = runtime::waiting_word(w->token) | runtime::kReserved;
    if (p->selection.load(std::memory_order_acquire) == reserved) {
        p->selection.store(runtime::waiting_word(w->token) | encode(o, w->index), std::memory_order_release);
        return true;
    }
    return win(w, o);
}

// end_all empties both queues, ending every wait that can still be won with
// `o`; returns the winners of this OS process linked through `next`, to be
// readied after unlock (those of another are readied at once). Popping
// from the front only, it also empties a queue that a dead holder of the
// lock left half changed (repair_channel).
Waiter* end_all(ChannelCore* c, Outcome o) noexcept {
    Waiter* wake = nullptr;
    // (Writers held by extended readers end by poison only: retire cannot
    // meet them, as each holds an end of its side.)
    for (WaiterQueue* q : {&c->readers, &c->writers, &c->holding}) {
        if (q == &c->holding && o != Outcome::Poisoned) break;
        while (!q->empty()) {
            Waiter* w = q->head;
            const bool there = !runtime::local(w->parker);
            if (there) note_in_flight(c, w);
            // (Ended before it leaves its queue: should this OS process die
            // between the two, the repair finds it there, already ended.)
            const bool ended = q == &c->holding ? end_held(w, o) : win(w, o);
            q->pop_front();
            if (!ended) {
                if (there) c->in_flight.parker = nullptr;
            } else if (there) {
                runtime::ready(w->parker);
                c->in_flight.parker = nullptr;
            } else {
                w->next = wake;
                wake = w;
            }
        }
    }
    return wake;
}

void ready_all(Waiter* w) noexcept { ready_waiters(w); }

// discard_buffer destroys the buffered values, each taken off the buffer
// before it is destroyed: a holder of the lock that dies on the way leaves a
// buffer to discard further, never a value destroyed twice.
void discard_buffer(ChannelCore* c) noexcept {
    const Crossing* x = crossing_of(c);
    const bool traced = runtime::tracing() && c->count > 0;
    while (c->count > 0) {
        unsigned char* slot = buffer_slot(c, 0);
        c->head = (c->head + 1) % c->capacity;
        set_count(c, c->count - 1);
        if (traced) traced_out(c, me(), "discarded");
        if (x) x->buffer_discard(c, slot);
        else c->ops->destroy(slot);
    }
    c->head = 0;
    if (traced) traced_count(c);
}

// retire_locked marks the channel retired (its `side` left) and ends every
// blocked operation (a blocked reader means an empty buffer, so nothing is
// left undrained).
Waiter* retire_locked(ChannelCore* c, Side side) noexcept {
    c->retired = true;
    c->unusual = true;
    if (runtime::tracing()) runtime::trace_event("retire", c->name);
    if (const Crossing* x = crossing_of(c)) x->retired(c, side);
    return end_all(c, Outcome::Retired);
}

// unusual_wake finishes a blocked operation that did not simply complete
// in this OS process: the deadlock breaker ended it, or it carries a parcel.
[[gnu::noinline]] Outcome unusual_wake(ChannelCore* c, Side side, Waiter* w, void* slot, Outcome o) noexcept {
    if (o == Outcome::Deadlocked) {
        // The deadlock breaker does not dequeue: do it here.
        Locked<SharedLock> hold(c->lock);
        if (w->queued) queue_of(c, side).remove(w);
    }
    return w->parcel ? settle(c, side, w, o, slot) : o;
}

// block parks the caller on the `side` queue and returns how its wait
// ended. Called with the lock held; returns with it released. `parcel`: a
// writer's value packed beforehand, which its waiter carries. (A template
// on the side: one copy each, with the side's queue and words fixed.)
template <Side side>
Outcome block(ChannelCore* c, void* slot, Parcel* parcel = nullptr, bool probe = false) noexcept {
    runtime::Parker* me = runtime::current();
    // (The wait begun first: its atomic store, between the waiter's default
    // members and the values given them here, kept both sets of stores.)
    const std::uint64_t token = runtime::begin_wait(me);
    auto* pw = ::new (static_cast<void*>(runtime::upper_area<WaitArea>(me).plain_wait)) PlainWait;
    auto* w = &pw->waiter;
    w->parker = me;
    w->token = token;
    w->slot = slot;
    if (side == Side::Writer && fits_plain_wait(c)) {
        // A small trivially copyable value waits in the writer's own wait
        // record (see PlainWait).
        std::memcpy(pw->bytes, slot, c->ops->size);
        w->slot = pw->bytes;
    }
    w->parcel = parcel;
    w->solo = true;
    w->probe = probe;
    me->completer_lock = &c->lock;
    const Crossing* x = crossing_of(c);
    if (side == Side::Writer && x) x->queue_writer(c, w);
    queue_of(c, side).push(w);
    if (side == Side::Writer && c->extended) [[unlikely]] {
        // (Readied before the lock goes: this process is about to park.)
        if (Waiter* p = wake_probe(c)) runtime::ready(p->parker);
    }
    // The lock is released only once we have parked (the park rule).
    const std::uint32_t word =
        runtime::park(me, x ? wait_kind_across(c) : runtime::WaitKind::Blocked,
                      &c->blocked_on[static_cast<int>(side)],
                      runtime::unlocking(c->lock));
    me->completer_lock = nullptr;
    const Outcome o = outcome_part(word);
    if (o == Outcome::Done && !w->parcel) [[likely]] return o;
    return unusual_wake(c, side, w, slot, o);
}

}  // namespace

void queue_writer(ChannelCore* c, Waiter* w) noexcept {
    if (const Crossing* x = crossing_of(c)) x->queue_writer(c, w);
}

bool receive(ChannelCore* c, Parcel* p, void* dst) noexcept { return crossing_of(c)->receive(c, p, dst); }

Outcome settle(ChannelCore* c, Side side, Waiter* w, Outcome o, void* slot) noexcept {
    return crossing_of(c)->settle(c, side, w, o, slot);
}

ChannelCore* create(const ValueOps* ops, std::size_t capacity, std::string_view name, BufferKind kind) {
    if (kind == BufferKind::Infinite) capacity = kInfiniteFirst;
    // The creating thread may write or read later: count it as a possible
    // waker from now on (see the deadlock accounting in the runtime).
    (void)runtime::current();
    auto* c = runtime::arena_new<ChannelCore>();
    c->home = runtime::g_local_inbox;
    c->ops = ops;
    c->capacity = capacity;
    c->buffered = capacity > 0;
    if (ops->trivial && std::has_single_bit(ops->size) && ops->size <= 16) {
        c->copy_size = static_cast<std::uint8_t>(ops->size);
    }
    c->kind = capacity > 0 ? kind : BufferKind::Fifo;
    // A slot may come to hold a Parcel pointer instead (mark_cross).
    c->slot_size = ops->trivial ? ops->size : std::max(ops->size, sizeof(Parcel*));
    c->slot_size = (c->slot_size + ops->align - 1) / ops->align * ops->align;
    const std::size_t n = std::min(name.size(), sizeof c->name - 1);
    std::memcpy(c->name, name.data(), n);
    c->name[n] = '\0';
    if (runtime::tracing()) c->trace_number = runtime::trace_channel_number();
    if (capacity > 0) {
        try {
            c->buffer = static_cast<unsigned char*>(
                runtime::arena_allocate(capacity * c->slot_size, std::max(ops->align, alignof(std::max_align_t))));
        } catch (...) {
            runtime::arena_delete(c);
            throw;
        }
    }
    if (Distribution* d = distribution()) d->made(c);
    return c;
}

std::atomic<Distribution*> g_distribution{nullptr};

void launching() noexcept {
    if (Distribution* d = distribution()) [[unlikely]] d->launching();
}

void acquire(ChannelCore* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }

void release(ChannelCore* c) noexcept {
    if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    discard_buffer(c);
    runtime::arena_free(c->buffer);
    runtime::arena_delete(c);
}

// Ends are counted without the lock (a million processes each holding an
// end of one channel join and leave it a million times); only the end that
// leaves last takes it, to retire the channel. A join racing with that last
// leave is a join after it: the channel is retired, as it would be had the
// two taken the lock in that order. (count_end: a forked child's tally of
// its ends; see crossing.hpp.)
namespace {
std::atomic<std::int64_t>& ends_of(ChannelCore* c, Side side) noexcept {
    return side == Side::Reader ? c->reader_ends : c->writer_ends;
}

// (A channel shared by MPI ranks counts its ends for the whole job, at its
// home: see remote.hpp.)
void join(ChannelCore* c, Side side) noexcept {
    count_end(c, +1);
    if (c->shared_id) [[unlikely]] {
        if (Distribution* d = distribution()) return d->ends_changed(c, side, +1);
    }
    ends_of(c, side).fetch_add(1, std::memory_order_relaxed);
}

void leave(ChannelCore* c, Side side) noexcept {
    Distribution* d = c->shared_id ? distribution() : nullptr;
    if (d) [[unlikely]] {
        d->ends_changed(c, side, -1);
    } else if (ends_of(c, side).fetch_sub(1, std::memory_order_acq_rel) == 1) {
        retire_side(c, side);
    }
    count_end(c, -1);
}
}  // namespace

void join_reader(ChannelCore* c) noexcept { join(c, Side::Reader); }
void join_writer(ChannelCore* c) noexcept { join(c, Side::Writer); }
void leave_reader(ChannelCore* c) noexcept { leave(c, Side::Reader); }
void leave_writer(ChannelCore* c) noexcept { leave(c, Side::Writer); }

void retire_side(ChannelCore* c, Side side) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(c->lock);
        if (c->retired) return;
        wake = retire_locked(c, side);
        if (side == Side::Reader) discard_buffer(c);  // nobody can read these any more
    }
    ready_all(wake);
}

void repair_channel(runtime::SharedLock* lock) noexcept {
    static_assert(offsetof(ChannelCore, lock) == 0);
    auto* c = reinterpret_cast<ChannelCore*>(lock);
    runtime::logger().warn("channel '{}': an OS process died holding its lock; poisoning it", c->name);
    if (runtime::Parker* p = c->in_flight.parker) {
        const std::uint32_t i = c->in_flight.index;
        runtime::rescue(p, c->in_flight.token, kIndexMask, index_bits(i), encode(Outcome::Poisoned, i));
        c->in_flight.parker = nullptr;
    }
    c->poisoned = true;
    c->unusual = true;
    if (runtime::tracing()) runtime::trace_event("poison", c->name);
    if (const Crossing* x = crossing_of(c)) x->poisoned(c);
    discard_buffer(c);
    // (Readied with the lock held: the caller of lock() goes on holding it.)
    ready_all(end_all(c, Outcome::Poisoned));
}

void poison(ChannelCore* c) noexcept {
    Waiter* wake = nullptr;
    if (c->remote) [[unlikely]] {
        // A replica: poisoned here at once (its processes here see it), and
        // at the home, which tells every waiter of every rank.
        {
            Locked<SharedLock> hold(c->lock);
            if (c->poisoned) return;
            c->poisoned = true;
            c->unusual = true;
        }
        if (runtime::tracing()) runtime::trace_event("poison", c->name);
        c->remote->poison(c);
        return;
    }
    {
        Locked<SharedLock> hold(c->lock);
        if (c->poisoned) return;
        c->poisoned = true;
        c->unusual = true;
        if (runtime::tracing()) runtime::trace_event("poison", c->name);
        if (const Crossing* x = crossing_of(c)) x->poisoned(c);
        discard_buffer(c);
        wake = end_all(c, Outcome::Poisoned);
    }
    ready_all(wake);
}

namespace {
// The steps themselves, inlined into read and write (their hot path); the
// alternation engine calls them through try_read_locked/try_write_locked.
// The buffered read and the refill of the freed slot, off the hot path of
// the unbuffered rendezvous.
// take_oldest: the oldest buffered value leaves the buffer into `dst` (or,
// on a channel that crosses, perhaps as a parcel in *got).
void take_oldest(ChannelCore* c, void* dst, Parcel** got) noexcept {
    unsigned char* oldest = buffer_slot(c, 0);
    if (const Crossing* x = crossing_of(c)) {
        *got = x->buffer_take(c, oldest, dst);
    } else {
        c->ops->move_construct(dst, oldest);
        c->ops->destroy(oldest);
    }
    c->head = (c->head + 1) % c->capacity;
    set_count(c, c->count - 1);
    if (runtime::tracing()) [[unlikely]] traced_out(c, me());
}

// refill: a slot is free: a blocked writer's value moves into it.
void refill(ChannelCore* c, Waiter** wake, bool want = true) noexcept {
    if (Waiter* w = take(c, c->writers, want)) {
        unsigned char* slot = buffer_slot(c, c->count);
        if (const Crossing* x = crossing_of(c)) x->buffer_refill(c, slot, w);
        else c->ops->move_construct(slot, w->slot);
        set_count(c, c->count + 1);
        if (runtime::tracing()) [[unlikely]] traced_in(c, w->parker);
        woken(c, wake, w);
    }
}

[[gnu::noinline]] Attempt read_buffered(ChannelCore* c, void* dst, Waiter** wake, Parcel** got,
                                        bool want = true) noexcept {
    take_oldest(c, dst, got);
    refill(c, wake, want);
    if (runtime::tracing()) [[unlikely]] traced_count(c);
    return Attempt::Done;
}

// Room: what a writer finds in a full buffer (room_for_write).
enum class Room { Yes, Drop, No };

// grow: an infinite buffer, full, doubles (lock held); false when it cannot
// (kMaxBuffer, or no memory: the writer then waits, as for a FIFO).
[[gnu::noinline]] bool grow(ChannelCore* c) noexcept {
    const std::size_t bigger = std::min(2 * c->capacity, kMaxBuffer);
    if (bigger <= c->capacity) return false;
    unsigned char* fresh;
    try {
        fresh = static_cast<unsigned char*>(
            runtime::arena_allocate(bigger * c->slot_size, std::max(c->ops->align, alignof(std::max_align_t))));
    } catch (...) {
        return false;
    }
    // The values move, oldest first: in place as they are when they may
    // be parcels or trivially copyable bytes (a channel that crosses), else
    // by their move constructor.
    const bool bytes = crossing_of(c) || c->ops->trivial;
    for (std::size_t i = 0; i < c->count; ++i) {
        unsigned char* from = buffer_slot(c, i);
        unsigned char* to = fresh + i * c->slot_size;
        if (bytes) {
            std::memcpy(to, from, c->slot_size);
        } else {
            c->ops->move_construct(to, from);
            c->ops->destroy(from);
        }
    }
    // (The old buffer goes last: a holder of the lock that dies on the way
    // leaves a channel whose buffer is whole, old or new, to poison.)
    unsigned char* old = std::exchange(c->buffer, fresh);
    c->capacity = bigger;
    c->head = 0;
    runtime::arena_free(old);
    if (bigger >= kInfiniteWarning && !c->warned) {
        c->warned = true;
        runtime::logger().warn("channel '{}': its infinite buffer holds {} values and grows: is a reader missing?",
                               c->name, c->count);
    }
    return true;
}

// room_for_write: a writer finds the buffer full (lock held): an
// overwriting buffer drops its oldest value (destroyed here, once), a
// dropping buffer drops the writer's (Drop: the write is done, its value
// left to the writer, who destroys it), an infinite one grows.
Room room_for_write(ChannelCore* c) noexcept {
    if (c->count + c->held < c->capacity) return Room::Yes;
    switch (c->kind) {
        case BufferKind::Overwriting: {
            if (c->count == 0) return Room::Drop;  // every slot held by an extended read: nothing unread to drop
            unsigned char* oldest = buffer_slot(c, 0);
            c->head = (c->head + 1) % c->capacity;
            set_count(c, c->count - 1);
            if (runtime::tracing()) [[unlikely]] traced_out(c, me(), "overwritten");
            if (const Crossing* x = crossing_of(c)) x->buffer_discard(c, oldest);
            else c->ops->destroy(oldest);
            return Room::Yes;
        }
        case BufferKind::Dropping: return Room::Drop;
        case BufferKind::Infinite: return grow(c) ? Room::Yes : Room::No;
        case BufferKind::Fifo: break;
    }
    return Room::No;
}

[[gnu::always_inline]] inline Attempt try_read(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->count > 0) return read_buffered(c, dst, wake, got);
    if (Waiter* w = take(c, c->writers)) {  // unbuffered rendezvous
        if (runtime::local(w->parker)) [[likely]] c->ops->move_construct(dst, w->slot);
        else *got = crossing_of(c)->take_from(c, w);  // (a writer there: the channel crosses)
        if (runtime::tracing()) [[unlikely]] traced_handed(c, w->parker, me());
        woken(c, wake, w);
        return Attempt::Done;
    }
    return c->retired ? Attempt::Retired : Attempt::Block;
}

// t_crowded: a write on this thread has just brought an infinite buffer to a
// multiple of kInfiniteYieldAt values. Its writer never waits, so a fiber
// writing in a loop would keep its worker until the loop ends, while the
// values pile up (growing the buffer: memory, copies, page faults) and a
// reader on the same worker waits its turn. Instead the writing fiber then
// yields once (yield_to_reader), which lets such a reader drain the buffer.
// (Every kInfiniteYieldAt-th value, not every value past it: with several
// workers the reader usually runs elsewhere, and yielding at each write
// only made it empty the buffer and park, to be woken again: 15% slower
// in bench/buffered on two workers.) A plain thread does not yield (the
// reader has a thread of its own). Only writes to infinite buffers look at
// the flag (a TLS load off every other write path); a choice's output guard
// leaves it for its thread's next plain write to one: one yield, later.
thread_local bool t_crowded = false;

[[gnu::noinline]] void yield_to_reader() noexcept {
    t_crowded = false;
    if (!runtime::current()->is_thread) runtime::yield();
}

// pre: the writer's value packed before the lock was taken (or null); taken
// from *pre when used.
[[gnu::always_inline]] inline Attempt try_write(ChannelCore* c, void* src, Waiter** wake,
                                                Parcel** pre = nullptr) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->retired) return Attempt::Retired;
    if (Waiter* w = take(c, c->readers)) {  // a reader waits: hand over directly
        if (runtime::local(w->parker)) [[likely]] c->ops->move_construct(w->slot, src);
        else crossing_of(c)->hand_to(c, w, src, pre);  // (a reader there: the channel crosses)
        if (runtime::tracing()) [[unlikely]] traced_handed(c, me(), w->parker);
        woken(c, wake, w);
        return Attempt::Done;
    }
    if (c->capacity == 0) return Attempt::Block;
    switch (room_for_write(c)) {
        case Room::Yes: {
            unsigned char* slot = buffer_slot(c, c->count);
            if (const Crossing* x = crossing_of(c)) x->buffer_put(c, slot, src, pre);
            else c->ops->move_construct(slot, src);
            set_count(c, c->count + 1);
            if (runtime::tracing()) [[unlikely]] traced_put(c, me());
            if (c->kind == BufferKind::Infinite && c->count % kInfiniteYieldAt == 0) [[unlikely]] t_crowded = true;
            if (c->extended) [[unlikely]] *wake = wake_probe(c);  // (*wake is free: no reader was taken)
            return Attempt::Done;
        }
        case Room::Drop: return Attempt::Done;  // (*src and *pre stay the writer's)
        case Room::No: break;
    }
    return Attempt::Block;
}
}  // namespace

Attempt try_read_locked(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept {
    return try_read(c, dst, wake, got);
}
Attempt try_write_locked(ChannelCore* c, void* src, Waiter** wake, Parcel** pre) noexcept {
    return try_write(c, src, wake, pre);
}

namespace {

Outcome finish(ChannelCore* c, Attempt a, Waiter* wake) noexcept {
    c->lock.unlock();
    if (wake) runtime::ready(wake->parker);
    switch (a) {
        case Attempt::Done: return Outcome::Done;
        case Attempt::Poisoned: return Outcome::Poisoned;
        default: return Outcome::Retired;
    }
}

Outcome read_impl(ChannelCore* c, void* dst) noexcept {
    c->lock.lock();
    Waiter* wake = nullptr;
    Parcel* got = nullptr;
    const Attempt a = try_read(c, dst, &wake, &got);
    if (a == Attempt::Block) return block<Side::Reader>(c, dst);
    const Outcome o = finish(c, a, wake);
    if (got && !receive(c, got, dst)) [[unlikely]] return Outcome::Poisoned;
    return o;
}

Outcome write_impl(ChannelCore* c, void* src) noexcept {
    // On a channel that crosses, the Crossing may pack the value before the
    // lock is taken (serializing a large value under a spin lock would hold
    // up everyone else on the channel).
    const Crossing* x = crossing_of(c);
    Parcel* pre = nullptr;
    if (x && !x->prepack(c, src, &pre)) [[unlikely]] return Outcome::Unpackable;
    c->lock.lock();
    // (It began to cross since: a fork's mark_cross. Packed here, under the
    // lock, rather than handed on as a lost value to a reader there.)
    if (const Crossing* now = x ? nullptr : crossing_of(c); now && !now->prepack(c, src, &pre)) [[unlikely]] {
        c->lock.unlock();
        return Outcome::Unpackable;
    }
    Waiter* wake = nullptr;
    const Attempt a = try_write(c, src, &wake, &pre);
    Outcome o;
    if (a == Attempt::Block) {
        o = block<Side::Writer>(c, src, std::exchange(pre, nullptr));  // its waiter carries it
    } else {
        o = finish(c, a, wake);
    }
    if (pre) [[unlikely]] parcel_free(pre);  // a partner in this OS process took the value itself
    return o;
}

// The general read and write: every channel kind, the misuse check, tracing.
// A replica's poison is known here at once; all else is at the home.
Outcome remotely(ChannelCore* c, bool reading, void* value) noexcept {
    {
        Locked<SharedLock> hold(c->lock);
        if (c->poisoned) return Outcome::Poisoned;
    }
    return reading ? c->remote->read(c, value) : c->remote->write(c, value);
}

// (Simulated, a process that has communicated may be preempted: its
// partner would run beside it on another worker. runtime/sim.cpp.)
[[gnu::noinline]] Outcome read_general(ChannelCore* c, void* dst) noexcept {
    if (c->remote) [[unlikely]] return remotely(c, true, dst);
    if (foreign_here(c)) [[unlikely]] return misused_across(c);
    const Outcome o = read_impl(c, dst);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("read", c->name);
    if (runtime::simulating()) [[unlikely]] runtime::sim_preempt();
    return o;
}

[[gnu::noinline]] Outcome write_general(ChannelCore* c, void* src) noexcept {
    if (c->remote) [[unlikely]] return remotely(c, false, src);
    if (foreign_here(c)) [[unlikely]] return misused_across(c);
    const Outcome o = write_impl(c, src);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("write", c->name);
    if (c->kind == BufferKind::Infinite && t_crowded) [[unlikely]] yield_to_reader();
    if (runtime::simulating()) [[unlikely]] runtime::sim_preempt();
    // (A write that did not wait: see went_on. One that waited has had a
    // switch, which started the count again. Last, after the trace and the
    // crowded buffer's yield, which a yield here would otherwise move.)
    else if (o == Outcome::Done) runtime::went_on();
    return o;
}

// rendezvous_here: the common case, which read and write take without the
// general path's checks: an unbuffered channel made by this OS process, no
// tracing and no simulation (runtime::g_plain_home: one load for all three). Under
// the lock the fast path also needs it not to cross (so every waiter on it
// is local and none carries a parcel), and neither poisoned nor retired:
// plain_locked.
inline bool rendezvous_here(const ChannelCore* c) noexcept {
    return !c->buffered && c->home == runtime::g_plain_home.load(std::memory_order_relaxed);
}

// (Read under the lock: mark_cross sets `crossing` under it, before another
// OS process can touch the channel.)
inline bool plain_locked(const ChannelCore* c) noexcept {
    // (`unusual` is set beside each of the four, wherever they are set.)
    assert(c->unusual == (c->poisoned || c->retired || crossing_of(c) != nullptr || c->extended));
    return !c->unusual;
}

// move_value moves a value between a waiter's slot and the caller's; small
// trivially copyable values (ints, pointers, small structs) without the
// indirect call, and 8 bytes (a number, a pointer) with one test.
[[gnu::noinline]] void move_other(const ChannelCore* c, void* dst, void* src) noexcept {
    switch (c->copy_size) {
        case 1: std::memcpy(dst, src, 1); return;
        case 2: std::memcpy(dst, src, 2); return;
        case 4: std::memcpy(dst, src, 4); return;
        case 16: std::memcpy(dst, src, 16); return;
        default: c->ops->move_construct(dst, src);
    }
}

[[gnu::always_inline]] inline void move_value(const ChannelCore* c, void* dst, void* src) noexcept {
    if (c->copy_size == 8) [[likely]] {
        std::memcpy(dst, src, 8);
        return;
    }
    move_other(c, dst, src);
}

// rendezvous: the fast path of read (Reading) and write, one body for both
// sides: take a partner from the other side's queue, or queue on ours.
template <bool Reading>
[[gnu::always_inline]] inline Outcome rendezvous(ChannelCore* c, void* mine) noexcept {
    c->lock.lock();
    if (!plain_locked(c)) [[unlikely]] {
        c->lock.unlock();  // the general path deals with it
        return Reading ? read_general(c, mine) : write_general(c, mine);
    }
    if (Waiter* w = take_here(Reading ? c->writers : c->readers)) {
        if (Reading) move_value(c, mine, w->slot);
        else move_value(c, w->slot, mine);
        c->lock.unlock();
        runtime::ready(w->parker);
        if (!Reading) runtime::went_on();  // (a write that did not wait; reads drain: see went_on)
        return Outcome::Done;
    }
    return block<Reading ? Side::Reader : Side::Writer>(c, mine);
}
}  // namespace

Outcome read(ChannelCore* c, void* dst) noexcept {
    if (rendezvous_here(c)) [[likely]] return rendezvous<true>(c, dst);
    return read_general(c, dst);
}

Outcome write(ChannelCore* c, void* src) noexcept {
    if (rendezvous_here(c)) [[likely]] return rendezvous<false>(c, src);
    return write_general(c, src);
}


// ---- extended rendezvous (channel.hpp) -------------------------------------------

Waiter* wake_probe(ChannelCore* c, const runtime::Parker* self) noexcept {
    for (Waiter* w = c->readers.head; w;) {
        Waiter* next = w->next;
        if (w->probe && w->parker != self) {
            const bool there = !runtime::local(w->parker);
            if (there) note_in_flight(c, w);
            c->readers.remove(w);
            if (win(w, Outcome::Done)) {
                if (!there) return w;
                runtime::ready(w->parker);
                c->in_flight.parker = nullptr;
                return nullptr;
            }
            if (there) c->in_flight.parker = nullptr;  // stale: dropped
        }
        w = next;
    }
    return nullptr;
}

namespace {
// reserve_writer: the oldest queued writer that can be won, moved to
// c->holding with its wait reserved (runtime::kReserved) instead of ended.
// It goes to `holding` before it is won: should this OS process die on the
// way, whoever repairs the channel finds it there (end_held).
Waiter* reserve_writer(ChannelCore* c) noexcept {
    for (Waiter* w = c->writers.head; w;) {
        Waiter* next = w->next;
        const auto reserved = [w] {
            const std::uint64_t word = w->parker->selection.load(std::memory_order_relaxed);
            return static_cast<std::uint32_t>(word) == runtime::kReserved && word >> 32 == w->token;
        };
        if (w->offer) {
            pass_over(w, true);
        } else if (!reserved()) {  // (one a home on another rank reserved is busy, left queued: see take)
            c->writers.remove(w);
            c->holding.push(w);
            const bool won = w->solo ? runtime::complete_locked(w->parker, w->token, runtime::kReserved)
                                     : runtime::try_complete(w->parker, w->token, runtime::kReserved);
            if (won) return w;
            c->holding.remove(w);  // stale: dropped
            if (reserved()) c->writers.push(w);  // (reserved meanwhile: not ours to drop)
        }
        w = next;
    }
    return nullptr;
}
}  // namespace

Attempt try_read_extended_locked(ChannelCore* c, void* dst, Held* held, Parcel** got) noexcept {
    *held = {};
    if (c->poisoned) return Attempt::Poisoned;
    const Crossing* x = crossing_of(c);
    if (c->count > 0) {
        // The value leaves the buffer, its slot stays counted (c->held).
        take_oldest(c, dst, got);
        ++c->held;
        held->slot = true;
        if (runtime::tracing()) [[unlikely]] traced_count(c);
        return Attempt::Done;
    }
    if (Waiter* w = reserve_writer(c)) {
        if (runtime::local(w->parker)) c->ops->move_construct(dst, w->slot);
        else *got = x->take_from(c, w);  // (a writer there: the channel crosses)
        if (runtime::tracing()) [[unlikely]] traced_handed(c, w->parker, me());
        w->parker->refs.fetch_add(1, std::memory_order_relaxed);  // (end_extended's: release_parker)
        *held = {w, w->parker, w->token, false};
        return Attempt::Done;
    }
    return c->retired ? Attempt::Retired : Attempt::Block;
}

Outcome read_extended(ChannelCore* c, void* dst, Held* held) noexcept {
    *held = {};
    if (c->remote) [[unlikely]] {
        const Outcome o = c->remote->read_extended(c, dst, held);
        if (o == Outcome::Done && runtime::tracing()) runtime::trace_event("read", c->name);
        return o;
    }
    if (foreign_here(c)) [[unlikely]] return misused_across(c);
    for (;;) {
        c->lock.lock();
        c->extended = true;
        c->unusual = true;
        Parcel* got = nullptr;
        const Attempt a = try_read_extended_locked(c, dst, held, &got);
        if (a == Attempt::Block) {
            // Wait as a probe; woken Done, look again.
            const Outcome o = block<Side::Reader>(c, nullptr, nullptr, true);
            if (o == Outcome::Done) continue;
            return o;
        }
        c->lock.unlock();
        if (a == Attempt::Poisoned) return Outcome::Poisoned;
        if (a == Attempt::Retired) return Outcome::Retired;
        if (got && !receive(c, got, dst)) [[unlikely]] {
            end_extended(c, held, false);
            return Outcome::Poisoned;
        }
        if (runtime::tracing()) runtime::trace_event("read", c->name);
        return Outcome::Done;
    }
}

void end_extended(ChannelCore* c, Held* held, bool ok) noexcept {
    if (c->remote) [[unlikely]] {
        if (held->remote) c->remote->end_extended(c, held, ok);
        *held = {};
        return;
    }
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(c->lock);
        if (held->slot) {
            --c->held;
            if (ok && !c->poisoned && c->count + c->held < c->capacity) {
                refill(c, &wake);
                if (runtime::tracing()) [[unlikely]] traced_count(c);
            }
        }
        // The writer, unless poison ended it meanwhile (then its waiter may
        // be in use again for another wait: only the word is looked at).
        const std::uint64_t reserved = runtime::waiting_word(held->token) | runtime::kReserved;
        if (held->writer && ok && held->parker->selection.load(std::memory_order_acquire) == reserved) {
            Waiter* w = held->writer;
            const bool there = !runtime::local(w->parker);
            if (there) note_in_flight(c, w);
            (void)end_held(w, Outcome::Done);  // (ended before it leaves `holding`: see end_all)
            c->holding.remove(w);
            woken(c, &wake, w);
        }
    }
    if (held->parker) runtime::release_parker(held->parker);
    *held = {};
    if (wake) runtime::ready(wake->parker);
    // The action threw: the channel is poisoned, which ends the held
    // writer's write with ChannelPoisonException (the unwinding rule).
    if (!ok) poison(c);
}


// ---- proxies (remote.hpp) -------------------------------------------------------

namespace {
// queue_proxy: p's waiter, on `side`'s queue of c (its lock held).
Waiter* queue_proxy(ChannelCore* c, Side side, runtime::Parker* p) noexcept {
    Waiter* w = solo_waiter(p, &c->lock);
    queue_of(c, side).push(w);
    return w;
}
}  // namespace

Waiter* proxy_waiter(runtime::Parker* p) noexcept {
    return &std::launder(reinterpret_cast<PlainWait*>(runtime::upper_area<WaitArea>(p).plain_wait))->waiter;
}

bool cancel_proxy(ChannelCore* c, Side side, runtime::Parker* p) noexcept {
    Waiter* w = proxy_waiter(p);
    Parcel* value = nullptr;
    {
        Locked<SharedLock> hold(c->lock);
        if (!runtime::try_complete(p, w->token, runtime::kDeadlocked)) return false;  // (completed: it is readied)
        if (w->queued) queue_of(c, side).remove(w);
        value = std::exchange(w->parcel, nullptr);
    }
    parcel_free(value);
    return true;
}

namespace {
// room_for_read: a parcel to copy a trivially copyable buffered value into,
// made before the lock is taken (null when not needed). Throws bad_alloc.
Parcel* room_for_read(const ChannelCore* c) {
    return c->ops->trivial && c->buffered ? parcel_new(c->ops->size) : nullptr;
}

// proxy_read_locked / proxy_write_locked: a proxy's read or write (lock
// held): done now, or p's waiter queued (Block; `queue`: false leaves that
// to the caller). *room is used (and nulled) when a buffered value is
// copied out; a writer's *value is taken when used.
Attempt proxy_read_locked(ChannelCore* c, runtime::Parker* p, Parcel** got, Parcel** room, Waiter** wake,
                          bool want, Busy* busy = nullptr) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->count > 0) {
        read_buffered(c, *room ? (*room)->data() : nullptr, wake, got, want);
        if (*room) *got = std::exchange(*room, nullptr);
        return Attempt::Done;
    }
    if (Waiter* w = take(c, c->writers, want, busy)) {
        *got = crossing_of(c)->take_from(c, w);  // (on a channel that crosses every queued writer has one)
        if (runtime::tracing()) [[unlikely]] traced_handed(c, w->parker, p);
        woken(c, wake, w);
        return Attempt::Done;
    }
    if (c->retired) return Attempt::Retired;
    queue_proxy(c, Side::Reader, p);
    return Attempt::Block;
}

Attempt proxy_write_locked(ChannelCore* c, runtime::Parker* p, Parcel** value, Waiter** wake, bool want,
                           Busy* busy = nullptr) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->retired) return Attempt::Retired;
    if (Waiter* w = take(c, c->readers, want, busy)) {
        // Whoever reads it unpacks it (receive / settle), on its own thread.
        w->parcel = std::exchange(*value, nullptr);
        if (runtime::tracing()) [[unlikely]] traced_handed(c, p, w->parker);
        woken(c, wake, w);
        return Attempt::Done;
    }
    const Room room = c->capacity > 0 ? room_for_write(c) : Room::No;
    if (room == Room::Yes) {
        unsigned char* slot = buffer_slot(c, c->count);
        crossing_of(c)->buffer_put(c, slot, c->ops->trivial ? (*value)->data() : nullptr, value);
        set_count(c, c->count + 1);
        if (runtime::tracing()) [[unlikely]] traced_put(c, p);
        if (c->extended) [[unlikely]] *wake = wake_probe(c);
        return Attempt::Done;
    }
    if (room == Room::Drop) return Attempt::Done;  // (the caller frees *value)
    Waiter* w = queue_proxy(c, Side::Writer, p);
    w->slot = (*value)->data();
    w->parcel = std::exchange(*value, nullptr);
    if (c->extended) [[unlikely]] *wake = wake_probe(c);
    return Attempt::Block;
}

bool side_retired_locked(const ChannelCore* c, Side side) noexcept {
    if (c->poisoned || !c->retired) return false;
    return side == Side::Writer || c->count == 0;
}
}  // namespace

Attempt offer_read(ChannelCore* c, runtime::Parker* p, Parcel** got, bool want) noexcept {
    *got = nullptr;
    Parcel* room = nullptr;
    try {
        room = room_for_read(c);
    } catch (const std::bad_alloc&) {
        return Attempt::Poisoned;  // (out of memory: the proxy reports poison)
    }
    Waiter* wake = nullptr;
    c->lock.lock();
    const Attempt a = proxy_read_locked(c, p, got, &room, &wake, want);
    c->lock.unlock();
    if (wake) runtime::ready(wake->parker);
    parcel_free(room);
    return a;
}

Attempt offer_write(ChannelCore* c, runtime::Parker* p, Parcel* value, bool want) noexcept {
    Waiter* wake = nullptr;
    c->lock.lock();
    const Attempt a = proxy_write_locked(c, p, &value, &wake, want);
    c->lock.unlock();
    if (wake) runtime::ready(wake->parker);
    parcel_free(value);
    return a;
}

namespace {
// extended_room: a parcel a trivially copyable buffered value is copied out
// into, made before the lock is taken (null when not needed); false when
// memory ran out.
bool extended_room(const ChannelCore* c, Parcel** room) noexcept {
    *room = nullptr;
    try {
        if (c->ops->trivial) *room = parcel_new(c->ops->size);
    } catch (const std::bad_alloc&) {
        return false;
    }
    return true;
}

// proxy_extended_locked: a proxy's extended read (lock held): what
// try_read_extended_locked does, with the value always as a parcel (*room,
// nulled when used), or p's waiter queued as a probe (Block).
Attempt proxy_extended_locked(ChannelCore* c, runtime::Parker* p, Parcel** got, Held* held, Parcel** room) noexcept {
    c->extended = true;
    c->unusual = true;
    if (c->poisoned) return Attempt::Poisoned;
    if (c->count > 0) {
        // (As try_read_extended_locked: the slot stays counted in c->held.)
        take_oldest(c, *room ? (*room)->data() : nullptr, got);
        if (!*got) *got = std::exchange(*room, nullptr);
        ++c->held;
        held->slot = true;
        if (runtime::tracing()) [[unlikely]] traced_count(c);
        return Attempt::Done;
    }
    if (Waiter* w = reserve_writer(c)) {
        *got = crossing_of(c)->take_from(c, w);  // (every queued writer has a parcel: queue_writer)
        if (runtime::tracing()) [[unlikely]] traced_handed(c, w->parker, p);
        w->parker->refs.fetch_add(1, std::memory_order_relaxed);  // (end_extended's: release_parker)
        *held = {w, w->parker, w->token, false};
        return Attempt::Done;
    }
    if (c->retired) return Attempt::Retired;
    queue_proxy(c, Side::Reader, p)->probe = true;
    return Attempt::Block;
}

Commit commit_of(Attempt a) noexcept {
    switch (a) {
        case Attempt::Done: return Commit::Done;
        case Attempt::Poisoned: return Commit::Poisoned;
        case Attempt::Retired: return Commit::Retired;
        default: return Commit::Block;
    }
}
}  // namespace

Attempt offer_extended(ChannelCore* c, runtime::Parker* p, Parcel** got, Held* held) noexcept {
    *got = nullptr;
    *held = {};
    Parcel* room;
    if (!extended_room(c, &room)) return Attempt::Poisoned;  // (out of memory: the proxy reports poison)
    Attempt a;
    {
        Locked<SharedLock> hold(c->lock);
        a = proxy_extended_locked(c, p, got, held, &room);
    }
    parcel_free(room);
    return a;
}

Commit commit_extended_offer(ChannelCore* c, runtime::Parker* p, Parcel** got, Held* held, bool woken) noexcept {
    if (woken) {
        // (Its probe's waker dequeued it: a fresh look, queued anew if need be.)
        return commit_of(offer_extended(c, p, got, held));
    }
    *got = nullptr;
    *held = {};
    Parcel* room;
    if (!extended_room(c, &room)) {
        if (cancel_proxy(c, Side::Reader, p)) return Commit::Poisoned;
        return Commit::Gone;
    }
    Attempt a;
    {
        Locked<SharedLock> hold(c->lock);
        Waiter* w = proxy_waiter(p);
        if (p->selection.load(std::memory_order_relaxed) != runtime::waiting_word(w->token)) {
            parcel_free(room);
            return Commit::Gone;  // (poison or retire ended it, or a writer woke its probe: p is readied)
        }
        if (w->queued) c->readers.remove(w);
        a = proxy_extended_locked(c, p, got, held, &room);
    }
    parcel_free(room);
    return commit_of(a);
}

void pass_on_wake(ChannelCore* c) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SharedLock> hold(c->lock);
        wake = wake_probe(c);
    }
    if (wake) runtime::ready(wake->parker);
}

namespace {
// committed_partner: q holds a waiter an offer could complete with now: not
// an offer (that one's chooser must be reserved first), nor a choice that a
// home has reserved (busy: it comes back through its own look). An extended
// reader's probe is one: woken, it takes the writer itself.
bool committed_partner(const WaiterQueue& q) noexcept {
    for (const Waiter* w = q.head; w; w = w->next) {
        if (w->offer) continue;
        if (runtime::outcome_of(w->parker) == runtime::kReserved) continue;
        return true;
    }
    return false;
}
bool any_offer(const WaiterQueue& q) noexcept {
    for (const Waiter* w = q.head; w; w = w->next) {
        if (w->offer) return true;
    }
    return false;
}
}  // namespace

Attempt offer_choice(ChannelCore* c, Side side, runtime::Parker* p, Parcel* value, bool* partner,
                     bool* offers) noexcept {
    *partner = false;
    *offers = false;
    Attempt a = Attempt::Block;
    {
        Locked<SharedLock> hold(c->lock);
        if (c->poisoned) {
            a = Attempt::Poisoned;
        } else if (side_retired_locked(c, side)) {
            a = Attempt::Retired;
        } else {
            Waiter* w = queue_proxy(c, side, p);
            w->offer = true;
            if (side == Side::Writer) {
                w->slot = value->data();
                w->parcel = std::exchange(value, nullptr);
                *partner = committed_partner(c->readers) || c->count + c->held < c->capacity ||
                           (c->capacity > 0 && c->kind != BufferKind::Fifo);
                *offers = any_offer(c->readers);
            } else {
                // (A retired channel with values: a reader drains them.)
                *partner = committed_partner(c->writers) || c->count > 0;
                *offers = any_offer(c->writers);
            }
            w->wanted = *partner;
        }
    }
    parcel_free(value);
    return a;
}

Commit commit_offer(ChannelCore* c, Side side, runtime::Parker* p, Parcel** got, Busy* busy) noexcept {
    *got = nullptr;
    *busy = {};
    Parcel* room = nullptr;
    if (side == Side::Reader) {
        try {
            room = room_for_read(c);
        } catch (const std::bad_alloc&) {
            // (Out of memory: the offer is taken back as if poisoned.)
            if (cancel_proxy(c, side, p)) return Commit::Poisoned;
            return Commit::Gone;
        }
    }
    Waiter* wake = nullptr;
    Attempt a;
    {
        Locked<SharedLock> hold(c->lock);
        Waiter* w = proxy_waiter(p);
        if (p->selection.load(std::memory_order_relaxed) != runtime::waiting_word(w->token)) {
            parcel_free(room);
            return Commit::Gone;  // (poison or retire ended it: p is readied)
        }
        if (w->queued) queue_of(c, side).remove(w);
        if (side == Side::Reader) {
            a = proxy_read_locked(c, p, got, &room, &wake, true, busy);
        } else {
            // An extended reader's probe that this write wakes takes the
            // writer itself, soon: the offer is busy, not left, meanwhile.
            // (wake_probe wins the oldest probe still waiting: that one.)
            const Waiter* probe = nullptr;
            if (c->extended) [[unlikely]] {
                for (const Waiter* r = c->readers.head; r && !probe; r = r->next) {
                    if (r->probe && r->parker->selection.load(std::memory_order_relaxed) ==
                                        runtime::waiting_word(r->token)) {
                        probe = r;
                    }
                }
            }
            runtime::Parker* probe_parker = probe ? probe->parker : nullptr;
            const std::uint64_t probe_token = probe ? probe->token : 0;
            Parcel* value = std::exchange(w->parcel, nullptr);
            a = proxy_write_locked(c, p, &value, &wake, true, busy);
            parcel_free(value);  // (the channel was poisoned or retired: nobody takes it)
            const auto woken = [&] {
                const std::uint64_t word = probe_parker->selection.load(std::memory_order_relaxed);
                return word >> 32 == probe_token && static_cast<std::uint32_t>(word) != runtime::kWaiting;
            };
            if (a == Attempt::Block && probe_parker && !busy->parker && woken()) {
                probe_parker->refs.fetch_add(1, std::memory_order_relaxed);  // (the caller's: release_parker)
                *busy = {probe_parker, probe_token, false, true};
            }
        }
    }
    if (wake) runtime::ready(wake->parker);
    parcel_free(room);
    const Commit r = commit_of(a);
    return r == Commit::Block && busy->parker ? Commit::Busy : r;
}

bool side_retired(ChannelCore* c, Side side) noexcept {
    Locked<SharedLock> hold(c->lock);
    return side_retired_locked(c, side);
}

}  // namespace csp::channels
