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
//     while holding it;
//   - a waiter whose selection word cannot be won is stale (its wait ended
//     elsewhere): it is dropped from the queue and skipped;
//   - several channels are locked in address order (alternation).
#pragma once

#include "channels/waiter.hpp"
#include "runtime/spin_lock.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace csp::channels {

// ValueOps: how to move and destroy values of a channel's element type, and
// how to pack and unpack them for another OS process.
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
};

// kMaxBuffer bounds buffer(n): larger is almost surely a mistake.
inline constexpr std::size_t kMaxBuffer = std::size_t{1} << 28;

// ChannelCore: the state of one channel, in the shared arena.
//
// Across OS processes (once `cross` is set, by mark_cross, before a second
// OS process may use it) values travel as parcels: every queued writer
// carries its value packed, a writer that completes a reader of another OS
// process packs into the reader's waiter, and a buffer of a non-trivial type
// holds Parcel pointers instead of values. Partners in one OS process still
// move the value straight across.
struct ChannelCore {
    runtime::SpinLock lock;
    WaiterQueue readers;          // blocked readers (oldest first)
    WaiterQueue writers;          // blocked writers (oldest first)
    const ValueOps* ops;
    std::size_t capacity;         // 0: unbuffered
    std::size_t head = 0;         // oldest buffered value
    std::size_t count = 0;        // buffered values
    unsigned char* buffer = nullptr;
    std::int64_t reader_ends = 0; // ends alive on each side
    std::int64_t writer_ends = 0;
    bool poisoned = false;
    bool retired = false;
    std::atomic<bool> cross{false};  // shared with another OS process (set under lock)
    std::size_t slot_size = 0;       // bytes per buffer slot
    runtime::Inbox* home = nullptr;  // the OS process that made it
    std::atomic<std::int64_t> refs{1};  // handles and ends
    char name[64];
};

// create makes a channel (one reference, held by the caller).
ChannelCore* create(const ValueOps* ops, std::size_t capacity, std::string_view name);
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

// mark_cross: the channel may now be used from another OS process too
// (call before that process can use it). Packs what is buffered and what
// queued writers hold.
void mark_cross(ChannelCore* c) noexcept;

// read constructs the value taken into `dst` (raw storage) on Done.
Outcome read(ChannelCore* c, void* dst) noexcept;
// write moves from `src` on Done; on any other outcome *src is untouched.
// (Across OS processes the reader gets a copy and *src stays as it was.)
Outcome write(ChannelCore* c, void* src) noexcept;

// receive_parcel: a reader that got a parcel (from try_read_locked, or in
// its waiter) unpacks it into `dst` and frees it; false (and the channel
// poisoned) when it cannot be unpacked.
bool receive_parcel(ChannelCore* c, Parcel* p, void* dst) noexcept;
// queue_writer_parcel: a writer about to queue on c (lock held) packs its
// value into its waiter if c crosses OS processes.
void queue_writer_parcel(ChannelCore* c, Waiter* w) noexcept;

// The steps of read and write that need no waiting, for the alternation
// engine; called with c->lock held. Block means the operation would have to
// wait. A waiter whose wait was won and that must be readied once the lock
// is released is stored in *wake. A reader that is Done with *got set has
// received a parcel instead of a value: receive_parcel it after unlocking.
enum class Attempt { Done, Poisoned, Retired, Block };
Attempt try_read_locked(ChannelCore* c, void* dst, Waiter** wake, Parcel** got) noexcept;
Attempt try_write_locked(ChannelCore* c, void* src, Waiter** wake) noexcept;

}  // namespace csp::channels
