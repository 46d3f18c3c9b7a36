// channel.cpp: reads, writes, retire and poison on the type-erased core.
// The invariants and locking rules are at the top of channel.hpp.
#include "channels/channel.hpp"

#include "runtime/arena.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SpinLock;

unsigned char* buffer_slot(ChannelCore* c, std::size_t i) noexcept {
    return c->buffer + ((c->head + i) % c->capacity) * c->slot_size;
}

// A parcel that could not be made (the reason was logged): the reader that
// meets it poisons the channel rather than wait for a value never coming.
Parcel g_lost_parcel{0, 0};
Parcel* const kLost = &g_lost_parcel;

// parcels_in_buffer: a buffer of a non-trivial type on a channel across OS
// processes holds Parcel pointers.
bool parcels_in_buffer(const ChannelCore* c) noexcept {
    return !c->ops->trivial && c->cross.load(std::memory_order_relaxed);
}

Parcel* pack_or_lost(ChannelCore* c, const void* src) noexcept {
    Parcel* p = c->ops->pack ? c->ops->pack(src) : nullptr;
    if (!p) {
        if (!c->ops->pack) {
            runtime::logger().error("channel '{}' crosses OS processes, but its values ({}) cannot: "
                                    "give the type a cereal serialize function", c->name, c->ops->type_name);
        }
        return kLost;
    }
    return p;
}

// PlainWait: the record of a plain read's or write's wait, in the waiting
// parker's upper storage (block): its waiter, and room for a small trivially
// copyable value that a writer in another OS process hands to it (pack_for).
// Every solo waiter is the waiter of a PlainWait (only block makes them).
// A round trip between OS processes then allocates nothing in the arena,
// whose allocator (a mutex and a tree, touched alternately from two cores)
// cost more than the rest of the hand-over.
constexpr std::size_t kInlineMark = ~std::size_t{0};  // Parcel::capacity of an inline value
constexpr std::size_t kPlainWaitHead = (sizeof(Waiter) + 15) / 16 * 16 + sizeof(Parcel);
struct PlainWait {
    Waiter waiter;
    alignas(16) Parcel parcel;
    unsigned char bytes[sizeof(WaitArea::plain_wait) - kPlainWaitHead];  // Parcel::data()
};
static_assert(sizeof(PlainWait) <= sizeof(WaitArea::plain_wait));
static_assert(alignof(PlainWait) <= alignof(WaitArea));
static_assert(offsetof(PlainWait, bytes) == offsetof(PlainWait, parcel) + sizeof(Parcel));
static_assert(offsetof(PlainWait, waiter) == 0);
static_assert(offsetof(PlainWait, bytes) % alignof(PlainWait) == 0);

// fits_inline: values of this channel fit a PlainWait's room.
inline bool fits_inline(const ChannelCore* c) noexcept {
    return c->ops->trivial && c->ops->size <= sizeof(PlainWait::bytes) &&
           c->ops->align <= alignof(PlainWait);
}

Parcel* get_slot_parcel(unsigned char* slot) noexcept {
    Parcel* p;
    std::memcpy(&p, slot, sizeof p);
    return p;
}
void put_slot_parcel(unsigned char* slot, Parcel* p) noexcept { std::memcpy(slot, &p, sizeof p); }

// win ends the wait of dequeued waiter `w` with `o` if nobody else has
// (called under the channel's lock).
inline bool win(Waiter* w, Outcome o) noexcept {
    return w->solo ? runtime::complete_locked(w->parker, w->token, encode(o, w->index))
                   : runtime::try_complete(w->parker, w->token, encode(o, w->index));
}

// take pops the oldest waiter of `q` whose wait can still be won, winning it
// with `done` for its own position. Stale waiters met on the way are dropped.
[[gnu::always_inline]] inline Waiter* take(WaiterQueue& q) noexcept {
    while (!q.empty()) {
        Waiter* w = q.pop_front();
        if (win(w, Outcome::Done)) [[likely]] return w;
    }
    return nullptr;
}

// end_all empties both queues, ending every wait that can still be won with
// `o`; returns the winners linked through `next`, to be readied after unlock.
Waiter* end_all(ChannelCore* c, Outcome o) noexcept {
    Waiter* wake = nullptr;
    for (WaiterQueue* q : {&c->readers, &c->writers}) {
        while (!q->empty()) {
            Waiter* w = q->pop_front();
            if (win(w, o)) {
                w->next = wake;
                wake = w;
            }
        }
    }
    return wake;
}

void ready_all(Waiter* w) noexcept {
    while (w) {
        Waiter* next = w->next;  // read before ready: the waiter's owner may reuse it
        runtime::ready(w->parker);
        w = next;
    }
}

void discard_buffer(ChannelCore* c) noexcept {
    const bool parcels = parcels_in_buffer(c);
    for (std::size_t i = 0; i < c->count; ++i) {
        if (parcels) parcel_free(get_slot_parcel(buffer_slot(c, i)));
        else c->ops->destroy(buffer_slot(c, i));
    }
    c->head = c->count = 0;
}

// retire_locked marks the channel retired and ends every blocked operation
// (a blocked reader means an empty buffer, so nothing is left undrained).
Waiter* retire_locked(ChannelCore* c) noexcept {
    c->retired = true;
    if (runtime::tracing()) runtime::trace_event("retire", c->name);
    return end_all(c, Outcome::Retired);
}

// unusual_wake finishes a blocked operation that did not simply complete
// in this OS process: the deadlock breaker ended it, or a parcel is involved.
[[gnu::noinline]] Outcome unusual_wake(ChannelCore* c, WaiterQueue& q, Waiter* w, void* slot, Outcome o) noexcept {
    if (o == Outcome::Deadlocked) {
        // The deadlock breaker does not dequeue: do it here.
        Locked<SpinLock> hold(c->lock);
        if (w->queued) q.remove(w);
    }
    if (Parcel* parcel = std::exchange(w->parcel, nullptr)) {
        // A writer's own parcel that nobody took, or a reader's value from
        // another OS process.
        if (&q == &c->writers) parcel_free(parcel);
        else if (o == Outcome::Done && !receive_parcel(c, parcel, slot)) o = Outcome::Poisoned;
    }
    return o;
}

// block parks the caller on `q` and returns how its wait ended. Called with
// the lock held; returns with it released.
Outcome block(ChannelCore* c, WaiterQueue& q, void* slot, Parcel* parcel = nullptr) noexcept {
    runtime::Parker* me = runtime::current();
    auto* pw = ::new (static_cast<void*>(runtime::upper_area<WaitArea>(me).plain_wait)) PlainWait;
    auto* w = &pw->waiter;
    w->parker = me;
    w->token = runtime::begin_wait(me);
    w->index = 0;
    w->slot = slot;
    if (&q == &c->writers && fits_inline(c)) {
        // A small trivially copyable value waits in the writer's own wait
        // record, beside the waiter its reader takes anyway, rather than on
        // the writer's stack: with a million writers blocked, every stack is
        // another cache miss and page walk away from the reader.
        std::memcpy(pw->bytes, slot, c->ops->size);
        w->slot = pw->bytes;
    }
    w->parcel = parcel;
    w->solo = true;
    me->completer_lock = &c->lock;
    if (&q == &c->writers) queue_writer_parcel(c, w);
    q.push(w);
    // The lock is released only once we have parked (the park rule).
    const std::uint32_t word =
        runtime::park(me, c->cross.load(std::memory_order_relaxed) ? runtime::WaitKind::Remote
                                                                   : runtime::WaitKind::Blocked,
                      {&q == &c->readers ? "is blocked reading from channel" : "is blocked writing to channel",
                       c->name},
                      runtime::unlocking(c->lock));
    me->completer_lock = nullptr;
    const Outcome o = outcome_part(word);
    if (o == Outcome::Done && !w->parcel) [[likely]] return o;
    return unusual_wake(c, q, w, slot, o);
}

}  // namespace

Parcel* parcel_new(std::size_t size, std::size_t capacity) {
    capacity = std::max(size, capacity);
    auto* p = static_cast<Parcel*>(runtime::arena_allocate(sizeof(Parcel) + capacity));
    p->size = size;
    p->capacity = capacity;
    return p;
}

void parcel_free(Parcel* p) noexcept {
    if (p && p != kLost && p->capacity != kInlineMark) runtime::arena_free(p);
}

bool receive_parcel(ChannelCore* c, Parcel* p, void* dst) noexcept {
    const bool ok = p != kLost && c->ops->unpack && c->ops->unpack(p, dst);
    parcel_free(p);
    if (!ok) {
        runtime::logger().error("channel '{}': a value from another OS process could not be "
                                "unpacked; poisoning the channel", c->name);
        poison(c);
    }
    return ok;
}

void queue_writer_parcel(ChannelCore* c, Waiter* w) noexcept {
    if (c->cross.load(std::memory_order_relaxed) && !w->parcel) w->parcel = pack_or_lost(c, w->slot);
}

void mark_cross(ChannelCore* c) noexcept {
    Locked<SpinLock> hold(c->lock);
    if (c->cross.load(std::memory_order_relaxed)) return;
    if (!c->ops->trivial) {
        // Buffered values become parcels (the other OS process cannot use
        // this one's heap). Every user so far is in this OS process.
        for (std::size_t i = 0; i < c->count; ++i) {
            unsigned char* slot = buffer_slot(c, i);
            Parcel* p = pack_or_lost(c, slot);
            c->ops->destroy(slot);
            put_slot_parcel(slot, p);
        }
    }
    c->cross.store(true, std::memory_order_relaxed);
    for (Waiter* w = c->writers.head; w; w = w->next) queue_writer_parcel(c, w);
}

ChannelCore* create(const ValueOps* ops, std::size_t capacity, std::string_view name) {
    // The creating thread may write or read later: count it as a possible
    // waker from now on (see the deadlock accounting in the runtime).
    (void)runtime::current();
    auto* c = runtime::arena_new<ChannelCore>();
    c->home = runtime::g_local_inbox;
    c->ops = ops;
    c->capacity = capacity;
    // A slot may come to hold a Parcel pointer instead (mark_cross).
    c->slot_size = ops->trivial ? ops->size : std::max(ops->size, sizeof(Parcel*));
    c->slot_size = (c->slot_size + ops->align - 1) / ops->align * ops->align;
    const std::size_t n = std::min(name.size(), sizeof c->name - 1);
    std::memcpy(c->name, name.data(), n);
    c->name[n] = '\0';
    if (capacity > 0) {
        try {
            c->buffer = static_cast<unsigned char*>(
                runtime::arena_allocate(capacity * c->slot_size, std::max(ops->align, alignof(std::max_align_t))));
        } catch (...) {
            runtime::arena_delete(c);
            throw;
        }
    }
    return c;
}

void acquire(ChannelCore* c) noexcept { c->refs.fetch_add(1, std::memory_order_relaxed); }

void release(ChannelCore* c) noexcept {
    if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    discard_buffer(c);
    runtime::arena_free(c->buffer);
    runtime::arena_delete(c);
}

void join_reader(ChannelCore* c) noexcept {
    Locked<SpinLock> hold(c->lock);
    ++c->reader_ends;
}

void join_writer(ChannelCore* c) noexcept {
    Locked<SpinLock> hold(c->lock);
    ++c->writer_ends;
}

void leave_reader(ChannelCore* c) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SpinLock> hold(c->lock);
        if (--c->reader_ends == 0 && !c->retired) {
            wake = retire_locked(c);
            discard_buffer(c);  // nobody can read these any more
        }
    }
    ready_all(wake);
}

void leave_writer(ChannelCore* c) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SpinLock> hold(c->lock);
        if (--c->writer_ends == 0 && !c->retired) wake = retire_locked(c);
    }
    ready_all(wake);
}

void poison(ChannelCore* c) noexcept {
    Waiter* wake = nullptr;
    {
        Locked<SpinLock> hold(c->lock);
        if (c->poisoned) return;
        c->poisoned = true;
        if (runtime::tracing()) runtime::trace_event("poison", c->name);
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
[[gnu::noinline]] Attempt read_buffered(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept {
    const bool parcels = parcels_in_buffer(c);
    unsigned char* oldest = buffer_slot(c, 0);
    if (parcels) {
        *got = get_slot_parcel(oldest);
    } else {
        c->ops->move_construct(dst, oldest);
        c->ops->destroy(oldest);
    }
    c->head = (c->head + 1) % c->capacity;
    --c->count;
    // A slot is free: a blocked writer's value moves into it.
    if (Waiter* w = take(c->writers)) {
        unsigned char* slot = buffer_slot(c, c->count);
        if (parcels) {
            // Every queued writer of a channel across OS processes has one.
            put_slot_parcel(slot, std::exchange(w->parcel, nullptr));
        } else if (runtime::local(w->parker)) {
            c->ops->move_construct(slot, w->slot);
        } else if (w->parcel && w->parcel != kLost) {  // a trivial value from another OS process
            std::memcpy(slot, w->parcel->data(), c->ops->size);
        } else {
            std::memset(slot, 0, c->ops->size);  // cannot happen on a channel handed over properly
        }
        ++c->count;
        *wake = w;
    }
    return Attempt::Done;
}

[[gnu::always_inline]] inline Attempt try_read(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->count > 0) return read_buffered(c, dst, wake, got);
    if (Waiter* w = take(c->writers)) {  // unbuffered rendezvous
        if (runtime::local(w->parker)) [[likely]] {
            c->ops->move_construct(dst, w->slot);
        } else {
            // (None on a channel that was not handed to the other OS
            // process: see misused_across.)
            Parcel* p = std::exchange(w->parcel, nullptr);
            *got = p ? p : kLost;
        }
        *wake = w;
        return Attempt::Done;
    }
    return c->retired ? Attempt::Retired : Attempt::Block;
}

// packed: the writer's value, packed before the lock was taken (or null);
// taken from *pre when used.
Parcel* packed(ChannelCore* c, const void* src, Parcel** pre) noexcept {
    if (pre && *pre) return std::exchange(*pre, nullptr);
    return pack_or_lost(c, src);
}

// pack_for: the value for waiting reader `w` in another OS process: in the
// reader's own PlainWait when it fits (nobody else touches that room until
// the reader, woken by this very writer, has read it), else a parcel.
Parcel* pack_for(ChannelCore* c, Waiter* w, const void* src, Parcel** pre) noexcept {
    if (w->solo && fits_inline(c)) {
        auto* pw = reinterpret_cast<PlainWait*>(w);
        pw->parcel.size = c->ops->size;
        pw->parcel.capacity = kInlineMark;
        std::memcpy(pw->bytes, src, c->ops->size);
        return &pw->parcel;
    }
    return packed(c, src, pre);
}

[[gnu::always_inline]] inline Attempt try_write(ChannelCore* c, void* src, Waiter** wake,
                                                Parcel** pre = nullptr) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->retired) return Attempt::Retired;
    if (Waiter* w = take(c->readers)) {  // a reader waits: hand over directly
        if (runtime::local(w->parker)) [[likely]] {
            c->ops->move_construct(w->slot, src);
        } else {
            w->parcel = pack_for(c, w, src, pre);
        }
        *wake = w;
        return Attempt::Done;
    }
    if (c->count < c->capacity) {
        unsigned char* slot = buffer_slot(c, c->count);
        if (parcels_in_buffer(c)) put_slot_parcel(slot, packed(c, src, pre));
        else c->ops->move_construct(slot, src);
        ++c->count;
        return Attempt::Done;
    }
    return Attempt::Block;
}
}  // namespace

Attempt try_read_locked(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept {
    return try_read(c, dst, wake, got);
}
Attempt try_write_locked(ChannelCore* c, void* src, Waiter** wake) noexcept { return try_write(c, src, wake); }

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
    if (a == Attempt::Block) return block(c, c->readers, dst);
    const Outcome o = finish(c, a, wake);
    if (got && !receive_parcel(c, got, dst)) [[unlikely]] return Outcome::Poisoned;
    return o;
}

// write_cross: a write on a channel shared with another OS process packs
// its value before taking the lock (serializing a large value under a spin
// lock would hold up everyone else on the channel).
[[gnu::noinline]] Outcome write_cross(ChannelCore* c, void* src) noexcept {
    // (Not a small trivially copyable value: a waiting reader takes that in
    // its own room, and a queued writer packs it under the lock, a memcpy.)
    Parcel* pre = fits_inline(c) ? nullptr : pack_or_lost(c, src);
    c->lock.lock();
    Waiter* wake = nullptr;
    const Attempt a = try_write(c, src, &wake, &pre);
    Outcome o;
    if (a == Attempt::Block) {
        // The queued waiter carries it (block frees it if nobody takes it).
        o = block(c, c->writers, src, std::exchange(pre, nullptr));
    } else {
        o = finish(c, a, wake);
    }
    parcel_free(pre);  // a partner in this OS process took the value itself
    return o;
}

Outcome write_impl(ChannelCore* c, void* src) noexcept {
    if (c->cross.load(std::memory_order_relaxed)) [[unlikely]] return write_cross(c, src);
    c->lock.lock();
    Waiter* wake = nullptr;
    const Attempt a = try_write(c, src, &wake);
    if (a == Attempt::Block) return block(c, c->writers, src);
    return finish(c, a, wake);
}

}  // namespace

namespace {
// misused_across: a channel that was never handed to a multiprocess (as an
// argument or a capture by value) is used from another OS process, say
// through a reference or a global. Its values may live in its maker's
// private memory: poison it rather than move garbage.
[[gnu::noinline]] Outcome misused_across(ChannelCore* c) noexcept {
    runtime::logger().error("channel '{}' is used from an OS process it was not handed to: pass its "
                            "ends to the csp::multiprocess as arguments (or capture them by value); "
                            "poisoning it", c->name);
    poison(c);
    return Outcome::Poisoned;
}

inline bool foreign(const ChannelCore* c) noexcept {
    return c->home != runtime::g_local_inbox && !c->cross.load(std::memory_order_relaxed);
}
}  // namespace

namespace {
// The general read and write: every channel kind, OS-process checks, tracing.
[[gnu::noinline]] Outcome read_general(ChannelCore* c, void* dst) noexcept {
    if (foreign(c)) [[unlikely]] return misused_across(c);
    const Outcome o = read_impl(c, dst);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("read", c->name);
    return o;
}

[[gnu::noinline]] Outcome write_general(ChannelCore* c, void* src) noexcept {
    if (foreign(c)) [[unlikely]] return misused_across(c);
    const Outcome o = write_impl(c, src);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("write", c->name);
    return o;
}

// rendezvous_here: the common case, which read and write take without the
// general path's checks: an unbuffered channel made by this OS process, no
// tracing. Under the lock the fast path also needs it not to cross OS
// processes (so every waiter on it is local and none carries a parcel), and
// neither poisoned nor retired: plain_locked.
inline bool rendezvous_here(const ChannelCore* c) noexcept {
    return c->capacity == 0 && c->home == runtime::g_local_inbox && !runtime::tracing();
}

// (Read under the lock: mark_cross sets `cross` under it, before another OS
// process can touch the channel.)
inline bool plain_locked(const ChannelCore* c) noexcept {
    return !c->poisoned && !c->retired && !c->cross.load(std::memory_order_relaxed);
}

// move_value moves a value between a waiter's slot and the caller's; small
// trivially copyable values (ints, pointers, small structs) without the
// indirect call.
[[gnu::always_inline]] inline void move_value(const ValueOps* ops, void* dst, void* src) noexcept {
    if (ops->trivial) {
        switch (ops->size) {
            case 1: std::memcpy(dst, src, 1); return;
            case 2: std::memcpy(dst, src, 2); return;
            case 4: std::memcpy(dst, src, 4); return;
            case 8: std::memcpy(dst, src, 8); return;
            case 16: std::memcpy(dst, src, 16); return;
            default: break;
        }
    }
    ops->move_construct(dst, src);
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
    if (Waiter* w = take(Reading ? c->writers : c->readers)) {
        if (Reading) move_value(c->ops, mine, w->slot);
        else move_value(c->ops, w->slot, mine);
        c->lock.unlock();
        runtime::ready(w->parker);
        return Outcome::Done;
    }
    return block(c, Reading ? c->readers : c->writers, mine);
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

}  // namespace csp::channels
