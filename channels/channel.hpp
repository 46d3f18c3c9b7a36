// channel.hpp: the type-erased channel core.
//
// One ChannelCore serves every kind of channel: unbuffered (capacity 0: a
// write completes only when a reader takes the value) and buffered FIFO,
// shared by any number of readers and writers. The typed layer (csp/) hands
// it a ValueOps table for the element type and raw pointers to values.
//
// Invariants (all under ChannelCore::lock):
//   - readers queue non-empty  =>  buffer empty
//   - writers queue non-empty  =>  buffer full (capacity 0: always "full")
//   - poisoned                 =>  both queues empty, buffer empty
//   - a Waiter is in a queue iff its `queued` flag is set
// Rules:
//   - collect under the lock, wake after unlocking: ready() is only called
//     once the lock is released, on waiters whose selection word we won
//     while holding it. Except a waiter of another OS process: it is
//     readied before the lock is released, and named in `in_flight` from
//     before its wait is won, so that if this OS process dies on the way
//     the lock's repair can finish that wait (nothing else could);
//   - a waiter whose selection word cannot be won is stale (its wait ended
//     elsewhere): it is dropped from the queue and skipped;
//   - several channels are locked in address order (alternation);
//   - a channel whose partners may be on the other side of a boundary
//     (another OS process) talks to it only through its Crossing (see
//     crossing.hpp, which owns every step of that).
//
// Files: channel.cpp (read, write, retire, poison), crossing.cpp (the other
// side of a boundary), alternation.cpp (choice).
#pragma once

#include "channels/crossing.hpp"
#include "channels/waiter.hpp"
#include "runtime/shared_lock.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace csp::channels {

// ValueOps: how to move and destroy values of a channel's element type, and
// how to pack and unpack them for the other side of a boundary.
struct ValueOps {
    std::size_t size;
    std::size_t align;
    void (*move_construct)(void* dst, void* src) noexcept;  // dst is raw storage
    void (*destroy)(void* p) noexcept;
    // memcpy moves it, in any OS process (a buffered value then stays in
    // the buffer as it is, even on a channel shared across OS processes).
    bool trivial;
    // pack serializes *src into a new parcel (nullptr when it cannot: the
    // type cannot cross OS processes, or memory ran out; the reason is
    // logged). unpack constructs a value from a parcel into raw storage;
    // false when it cannot. Both nullptr for a type that cannot cross.
    Parcel* (*pack)(const void* src) noexcept;
    bool (*unpack)(Parcel* p, void* dst) noexcept;
    const char* type_name;
    // elements: for a type whose packed form is a uint64_t count, then its
    // elements' bytes as they lie in *src (csp/serialize.hpp, Contiguous),
    // where those bytes lie, with *count and *bytes set; nullptr for any
    // other type. (A transport may send such a value from where it lies
    // while its writer waits, rather than pack it: libcsp-mpi.)
    const void* (*elements)(const void* src, std::uint64_t* count, std::size_t* bytes) noexcept = nullptr;
};

// kMaxBuffer bounds buffer(n): larger is almost surely a mistake.
inline constexpr std::size_t kMaxBuffer = std::size_t{1} << 28;

// BufferKind: what a buffered channel does when its buffer is full and a
// writer comes. Only Fifo makes the writer wait; the others never do.
enum class BufferKind : std::uint8_t {
    Fifo,         // the writer waits for room
    Infinite,     // the buffer grows (up to kMaxBuffer; a warning at kInfiniteWarning)
    Overwriting,  // the oldest unread value is dropped
    Dropping,     // the value being written is dropped
};
// An infinite buffer's first capacity, and the size past which it says
// (once per channel) that it may be missing a reader.
inline constexpr std::size_t kInfiniteFirst = 16;
inline constexpr std::size_t kInfiniteWarning = std::size_t{1} << 20;
// (A fiber whose write brings an infinite buffer to a multiple of this many
// values yields once: channel.cpp, t_crowded.)
inline constexpr std::size_t kInfiniteYieldAt = 16384;

class Remote;  // (remote.hpp)

// repair_channel: the Repair of a channel's lock, run by whoever takes it
// over from an OS process that died holding it: the channel's state may be
// half changed, so it is poisoned (see channel.cpp).
void repair_channel(runtime::SharedLock* lock) noexcept;

// launching: a combinator is about to start processes (Parallel, Spawn: csp's
// Launch), from the caller's thread: the Distribution hears of it, if there
// is one (remote.hpp).
void launching() noexcept;

// ChannelCore: the state of one channel, in the shared arena.
struct ChannelCore {
    runtime::SharedLock lock{&repair_channel};  // (first: repair_channel finds the channel from it)
    InFlight in_flight;
    WaiterQueue readers;          // blocked readers (oldest first)
    WaiterQueue writers;          // blocked writers (oldest first)
    const ValueOps* ops;
    std::size_t capacity;         // 0: unbuffered (an infinite buffer's grows: read it under the lock)
    bool buffered = false;        // capacity > 0 (never changes: read without the lock)
    BufferKind kind = BufferKind::Fifo;
    bool warned = false;          // (an infinite buffer said it grew large)
    // ops->size when the values are trivially copyable and 1, 2, 4, 8 or 16
    // bytes long (moved by a plain copy of that size on the fast path), else 0.
    std::uint8_t copy_size = 0;
    // Poisoned, retired, crossing or extended: set with each of them (under
    // the lock; never unset), so that the fast path tests one byte.
    bool unusual = false;
    std::size_t head = 0;         // oldest buffered value
    std::size_t count = 0;        // buffered values
    unsigned char* buffer = nullptr;
    // Extended rendezvous: writers whose values extended readers took and
    // whose writes complete when their actions return (their selection
    // words hold runtime::kReserved meanwhile), and the buffer slots such
    // readers keep occupied. `extended`: an extended reader has waited here
    // (its probes are in `readers`: the fast path is off for good).
    WaiterQueue holding;
    std::size_t held = 0;
    bool extended = false;
    bool poisoned = false;
    bool retired = false;
    // How to reach partners on the other side of a boundary; null while
    // every partner is in this OS process. Set under the lock, never unset.
    std::atomic<const Crossing*> crossing{nullptr};
    std::size_t slot_size = 0;       // bytes per buffer slot (a Crossing may keep a Parcel* there)
    runtime::Inbox* home = nullptr;  // the OS process that made it (null: a replica, see remote.hpp)
    // Shared by ranks (remote.hpp): its number in the job (0: not shared),
    // and on a replica how to reach the home.
    std::uint64_t shared_id = 0;
    const Remote* remote = nullptr;
    std::atomic<std::int32_t> shared_home{-1};  // (shared: the home's rank; -1 until chosen, remote.hpp)
    // Tracing (runtime/trace.hpp): the channel's number in the network, and
    // the values that have entered it (written into its buffer or handed to
    // a reader) and left it (read, or dropped); lock held.
    std::uint32_t trace_number = 0;
    std::uint32_t trace_in = 0;
    std::uint32_t trace_out = 0;
    char name[64];
    // The counts every end and handle changes as it comes and goes, without
    // the lock: `name` lies between them and what every read and write
    // reads (ops, home, crossing, poisoned, ...), so that a million
    // processes' ends ending on one core do not take those lines from the
    // partner communicating on another.
    std::atomic<std::int64_t> reader_ends{0};  // ends alive on each side (no lock: see join_reader)
    std::atomic<std::int64_t> writer_ends{0};
    std::atomic<std::int64_t> refs{1};  // handles and ends
    // What a process blocked on each side waits on, for deadlock reports
    // (indexed by Side).
    runtime::WaitReason blocked_on[2] = {{"is blocked reading from channel", name, this, runtime::Subject::Read},
                                         {"is blocked writing to channel", name, this, runtime::Subject::Write}};
};

// set_count: the buffered count, changed under the channel's lock, stored
// atomically (relaxed: the same instruction) because a view of the network
// reads it without the lock (csp::write_graph: a moment's count, for the eye).
inline void set_count(ChannelCore* c, std::size_t n) noexcept { __atomic_store_n(&c->count, n, __ATOMIC_RELAXED); }

// wait_kind_across: what a wait on channel c, which crosses, is: one that
// another MPI rank ends (a channel shared by ranks: remote.hpp), or one that
// another OS process ends.
inline runtime::WaitKind wait_kind_across(const ChannelCore* c) noexcept;

// fits_plain_wait: values of this channel fit a PlainWait's room.
inline bool fits_plain_wait(const ChannelCore* c) noexcept {
    return c->ops->trivial && c->ops->size <= sizeof(PlainWait::bytes) && c->ops->align <= alignof(PlainWait);
}

// ChannelWait: a channel a parked process waits on, and as which side; or
// (channel null) a barrier it syncs on or offers in a choice.
struct BarrierCore;  // (barrier.hpp)
struct ChannelWait {
    const ChannelCore* channel;
    Side side;
    const BarrierCore* barrier = nullptr;
};
// waits_of appends to *out the channels and barriers of the wait `why` (a
// parked process's wait_reason: a read, a write, a sync, or a choice's
// enabled channel guards not retired and barrier guards, up to
// kChoiceWaitsKept of them). For the views of the network
// (csp/network.cpp): what it reads holds only if that process was parked in
// that wait throughout.
inline constexpr std::size_t kChoiceWaitsKept = 8;
void waits_of(const runtime::WaitReason* why, std::vector<ChannelWait>* out);

// create makes a channel (one reference, held by the caller). `capacity`:
// 0 for unbuffered (Fifo only); for Infinite, ignored.
ChannelCore* create(const ValueOps* ops, std::size_t capacity, std::string_view name,
                    BufferKind kind = BufferKind::Fifo);
void acquire(ChannelCore* c) noexcept;
// release drops a reference; the last one destroys buffered values and frees.
void release(ChannelCore* c) noexcept;

// join_*: a new end of that side. leave_*: an end leaves; the last end of
// either side retires the channel.
void join_reader(ChannelCore* c) noexcept;
void join_writer(ChannelCore* c) noexcept;
void leave_reader(ChannelCore* c) noexcept;
void leave_writer(ChannelCore* c) noexcept;

// poison: every blocked and later operation fails with Poisoned; buffered
// values are discarded.
void poison(ChannelCore* c) noexcept;

// buffer_slot: the i-th oldest slot of the buffer (lock held).
inline unsigned char* buffer_slot(ChannelCore* c, std::size_t i) noexcept {
    return c->buffer + ((c->head + i) % c->capacity) * c->slot_size;
}

// read constructs the value taken into `dst` (raw storage) on Done.
Outcome read(ChannelCore* c, void* dst) noexcept;
// write moves from `src` on Done; on any other outcome *src is untouched.
// (Across a boundary the reader gets a copy and *src stays as it was.)
Outcome write(ChannelCore* c, void* src) noexcept;

// queue_writer: writer waiter w of this OS process is about to be queued on
// c (lock held): on a channel that crosses, it carries its value.
void queue_writer(ChannelCore* c, Waiter* w) noexcept;
// receive: a reader that got a parcel (from try_read_locked, or in its
// waiter) unpacks it into `dst`; false (and the channel poisoned) when it
// cannot be unpacked. Only on a channel that crosses.
bool receive(ChannelCore* c, Parcel* p, void* dst) noexcept;
// settle: waiter w of `side` of this OS process woke with o; on a channel
// that crosses, what it carries is dealt with (see Crossing::settle).
Outcome settle(ChannelCore* c, Side side, Waiter* w, Outcome o, void* slot) noexcept;

// The steps of read and write that need no waiting, for the alternation
// engine; called with c->lock held. Block means the operation would have to
// wait. A waiter whose wait was won and that must be readied once the lock
// is released is stored in *wake. A reader that is Done with *got set has
// received a parcel instead of a value: receive it after unlocking.
enum class Attempt { Done, Poisoned, Retired, Block };

// Busy: a partner that could not be taken now but may be soon (see take in
// channel.cpp and commit_offer in remote.hpp).
struct Busy {
    runtime::Parker* parker = nullptr;
    std::uint64_t token = 0;
    bool reserved = false;  // by a home (else released, choosing again)
    bool probe = false;     // an extended reader's probe, woken to take the writer
};
Attempt try_read_locked(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept;
// (pre: the writer's value prepacked, or null; taken from *pre when used.)
Attempt try_write_locked(ChannelCore* c, void* src, Waiter** wake, Parcel** pre = nullptr) noexcept;

// Extended rendezvous (API.md): an extended read takes a value and holds
// what delivered it until its action returns: the writer, whose write (or
// output guard) completes only then, or on a buffered channel the value's
// slot, which stays occupied (a write to a full channel finds no room there:
// a FIFO's writer waits, an overwriting buffer drops its oldest unread value
// or, when every slot is held, the new one; a dropping buffer the new one; an
// infinite buffer grows). An extended reader is never handed a value: it
// waits as a probe (Waiter::probe) that writers wake once a value is within
// reach, and then takes it itself, so writers need not know of it.
//
// Held: what one extended read holds.
// The writer's waiter is touched again only while its wait is still the
// one reserved (poison may have ended it, and its process reused the
// waiter since): so the wait is named by parker and token, and the parker
// is kept by a reference until end_extended.
struct Held {
    Waiter* writer = nullptr;  // in c->holding while its wait is reserved
    runtime::Parker* parker = nullptr;  // the writer's (a reference held)
    std::uint64_t token = 0;
    bool slot = false;  // a buffer slot (counted in c->held)
    // On a replica (a channel whose home is another rank): the request by
    // which the home holds the writer or slot for this read (remote.hpp).
    std::uint64_t remote = 0;
};
// try_read_extended_locked: take a value for an extended read (lock held):
// Done with the value in `dst` (or, on a channel that crosses, perhaps a
// parcel in *got to receive after unlocking) and *held set. Nobody is
// readied.
Attempt try_read_extended_locked(ChannelCore* c, void* dst, Held* held, Parcel** got) noexcept;
// read_extended: the blocking extended read (Done: *held must be ended with
// end_extended). On a replica, done at the home (Remote::read_extended).
Outcome read_extended(ChannelCore* c, void* dst, Held* held) noexcept;
// end_extended: the action returned (ok) and what *held holds is let go: its
// writer completes, its slot frees; or it threw (!ok), and the channel is
// poisoned: the writer's write ends Poisoned.
void end_extended(ChannelCore* c, Held* held, bool ok) noexcept;
// wake_probe: a value came within reach on c (lock held): the oldest probe
// (one per value: so while probes wait, no value is buffered or queued
// that no probe was woken for, and retire may end the probes left)
// there (not of `self`) is woken; one of this OS process is returned, to be
// readied by the caller (after unlocking, or at once), one of another is
// readied now.
Waiter* wake_probe(ChannelCore* c, const runtime::Parker* self = nullptr) noexcept;

inline runtime::WaitKind wait_kind_across(const ChannelCore* c) noexcept {
    return c->shared_id ? runtime::WaitKind::Rank : runtime::WaitKind::Remote;
}

}  // namespace csp::channels
