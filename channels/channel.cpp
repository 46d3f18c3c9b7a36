// channel.cpp: reads, writes, retire and poison on the type-erased core.
// The invariants and locking rules are at the top of channel.hpp.
#include "channels/channel.hpp"

#include "runtime/arena.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SpinLock;

unsigned char* buffer_slot(ChannelCore* c, std::size_t i) noexcept {
    return c->buffer + ((c->head + i) % c->capacity) * c->ops->size;
}

// take pops the oldest waiter of `q` whose wait can still be won, winning it
// with `done` for its own position. Stale waiters met on the way are dropped.
Waiter* take(WaiterQueue& q) noexcept {
    while (Waiter* w = q.head) {
        q.remove(w);
        if (runtime::try_complete(w->parker, w->token, encode(Outcome::Done, w->index))) return w;
    }
    return nullptr;
}

// end_all empties both queues, ending every wait that can still be won with
// `o`; returns the winners linked through `next`, to be readied after unlock.
Waiter* end_all(ChannelCore* c, Outcome o) noexcept {
    Waiter* wake = nullptr;
    for (WaiterQueue* q : {&c->readers, &c->writers}) {
        while (Waiter* w = q->head) {
            q->remove(w);
            if (runtime::try_complete(w->parker, w->token, encode(o, w->index))) {
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
    for (std::size_t i = 0; i < c->count; ++i) c->ops->destroy(buffer_slot(c, i));
    c->head = c->count = 0;
}

// retire_locked marks the channel retired and ends every blocked operation
// (a blocked reader means an empty buffer, so nothing is left undrained).
Waiter* retire_locked(ChannelCore* c) noexcept {
    c->retired = true;
    if (runtime::tracing()) runtime::trace_event("retire", c->name);
    return end_all(c, Outcome::Retired);
}

// block parks the caller on `q` and returns how its wait ended. Called with
// the lock held; returns with it released.
Outcome block(ChannelCore* c, WaiterQueue& q, void* slot) noexcept {
    runtime::Parker* me = runtime::current();
    auto* w = ::new (static_cast<void*>(me->upper)) Waiter;
    w->parker = me;
    w->token = runtime::begin_wait(me);
    w->index = 0;
    w->slot = slot;
    q.push(w);
    // The lock is released only once we have parked (the park rule).
    const std::uint32_t word =
        runtime::park(me, runtime::WaitKind::Channel, c->name, runtime::unlocking(c->lock));
    const Outcome o = outcome_part(word);
    if (o == Outcome::Deadlocked) {
        // The deadlock breaker does not dequeue: do it here.
        Locked<SpinLock> hold(c->lock);
        if (w->queued) q.remove(w);
    }
    return o;
}

}  // namespace

ChannelCore* create(const ValueOps* ops, std::size_t capacity, std::string_view name) {
    // The creating thread may write or read later: count it as a possible
    // waker from now on (see the deadlock accounting in the runtime).
    (void)runtime::current();
    auto* c = runtime::arena_new<ChannelCore>();
    c->ops = ops;
    c->capacity = capacity;
    const std::size_t n = std::min(name.size(), sizeof c->name - 1);
    std::memcpy(c->name, name.data(), n);
    c->name[n] = '\0';
    if (capacity > 0) {
        try {
            c->buffer = static_cast<unsigned char*>(
                runtime::arena_allocate(capacity * ops->size, std::max(ops->align, alignof(std::max_align_t))));
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
[[gnu::always_inline]] inline Attempt try_read(ChannelCore* c, void* dst, Waiter** wake) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->count > 0) {
        unsigned char* oldest = buffer_slot(c, 0);
        c->ops->move_construct(dst, oldest);
        c->ops->destroy(oldest);
        c->head = (c->head + 1) % c->capacity;
        --c->count;
        // A slot is free: a blocked writer's value moves into it.
        if (Waiter* w = take(c->writers)) {
            c->ops->move_construct(buffer_slot(c, c->count), w->slot);
            ++c->count;
            *wake = w;
        }
        return Attempt::Done;
    }
    if (Waiter* w = take(c->writers)) {  // unbuffered rendezvous
        c->ops->move_construct(dst, w->slot);
        *wake = w;
        return Attempt::Done;
    }
    return c->retired ? Attempt::Retired : Attempt::Block;
}

[[gnu::always_inline]] inline Attempt try_write(ChannelCore* c, void* src, Waiter** wake) noexcept {
    if (c->poisoned) return Attempt::Poisoned;
    if (c->retired) return Attempt::Retired;
    if (Waiter* w = take(c->readers)) {  // a reader waits: hand over directly
        c->ops->move_construct(w->slot, src);
        *wake = w;
        return Attempt::Done;
    }
    if (c->count < c->capacity) {
        c->ops->move_construct(buffer_slot(c, c->count), src);
        ++c->count;
        return Attempt::Done;
    }
    return Attempt::Block;
}
}  // namespace

Attempt try_read_locked(ChannelCore* c, void* dst, Waiter** wake) noexcept { return try_read(c, dst, wake); }
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
    const Attempt a = try_read(c, dst, &wake);
    if (a == Attempt::Block) return block(c, c->readers, dst);
    return finish(c, a, wake);
}

Outcome write_impl(ChannelCore* c, void* src) noexcept {
    c->lock.lock();
    Waiter* wake = nullptr;
    const Attempt a = try_write(c, src, &wake);
    if (a == Attempt::Block) return block(c, c->writers, src);
    return finish(c, a, wake);
}

}  // namespace

Outcome read(ChannelCore* c, void* dst) noexcept {
    const Outcome o = read_impl(c, dst);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("read", c->name);
    return o;
}

Outcome write(ChannelCore* c, void* src) noexcept {
    const Outcome o = write_impl(c, src);
    if (runtime::tracing() && o == Outcome::Done) runtime::trace_event("write", c->name);
    return o;
}

}  // namespace csp::channels
