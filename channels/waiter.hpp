// waiter.hpp: the waiter record and the outcome codes of a channel wait.
//
// A blocked read, write or alternation puts one Waiter on each channel it
// waits on. All the waiters of one wait point at the same Parker, whose
// selection word decides which of them completes: whoever completes a
// communication first wins that word with a compare-and-swap, and the other
// waiters of that wait become stale.
#pragma once

#include "runtime/runtime.hpp"

#include <cstddef>
#include <cstdint>

namespace csp::channels {

// The result of a channel operation, as the layer above sees it.
enum class Outcome : std::uint32_t {
    Done = 1,        // the value was transferred
    Poisoned = 2,    // the channel is poisoned
    Retired = 3,     // the channel is retired
    Deadlocked = 4,  // the runtime found a deadlock and ended this wait
    // The channel was used from an OS process it was not handed to (it was
    // poisoned). Returned by read and write only, never in a selection word.
    Misused = 5,
    // The value could not be packed for another OS process (its
    // serialization threw, or memory ran out): nothing was sent and the
    // channel is as it was. Returned by write and by a choice with an output
    // guard (before it communicates), never in a selection word.
    Unpackable = 6,
    // The operation cannot be done on this channel from here (any use of a
    // channel shared by MPI ranks from a csp::multiprocess child, which
    // cannot reach the other ranks: see remote.hpp). Returned by a choice
    // before it communicates, or by read and write; never in a selection
    // word.
    Unsupported = 7,
};

// An outcome and the position of the waiter (guard) it ended, packed into
// the low 32 bits of a selection word.
inline std::uint32_t encode(Outcome o, std::uint32_t index) noexcept {
    return ((index + 1) << 2) | static_cast<std::uint32_t>(o);
}
inline Outcome outcome_part(std::uint32_t word) noexcept {
    if (word == runtime::kDeadlocked) return Outcome::Deadlocked;
    return static_cast<Outcome>(word & 3u);
}
inline std::uint32_t index_part(std::uint32_t word) noexcept { return (word >> 2) - 1; }
// Every outcome of the waiter at `index`, o, has (o & kIndexMask) == index_bits(index).
inline constexpr std::uint32_t kIndexMask = ~3u;
inline std::uint32_t index_bits(std::uint32_t index) noexcept { return (index + 1) << 2; }

struct Parcel;  // a value on its way to the other side of a boundary (crossing.hpp)

// Waiter: one offer to communicate on one channel, in the shared arena (for
// a plain operation: inside the process's Parker).
struct Waiter {
    Waiter* prev = nullptr;  // the channel's queue (under its lock)
    Waiter* next = nullptr;  // also links the wake list after dequeueing
    runtime::Parker* parker = nullptr;  // whose wait this is
    std::uint64_t token = 0;            // which wait of that parker
    std::uint32_t index = 0;            // the guard position within the wait
    bool queued = false;                // in a channel queue now (under its lock)
    // The only waiter of a plain read or write: everyone who may end that
    // wait holds this channel's lock (see runtime::complete_locked), so it is
    // won without an atomic read-modify-write. An alternation's waiters are
    // raced for across channels and are won with a compare-and-swap.
    bool solo = false;
    // An offer of a choice on another MPI rank (remote.hpp): queued at the
    // home so that partners can find it, but nobody may complete with it
    // until its chooser is reserved; a completer that meets it passes over
    // it, and says so once (`wanted`) to the Distribution.
    bool offer = false;
    bool wanted = false;
    // An extended reader waiting (channel.hpp's extended rendezvous): it
    // waits for a value to come within reach, not for one to be handed to
    // it. A writer passes over it, and wakes it (Done) once its value is
    // queued or buffered; the reader then takes it itself.
    bool probe = false;
    void* slot = nullptr;  // reader: storage to construct into; writer: value to move from
    // Across a boundary the slot is out of reach: the value travels here
    // instead (crossing.hpp says when).
    Parcel* parcel = nullptr;
};

// WaitArea: the channel layer's part of a process's per-process area
// (runtime::Parker::upper; csp::detail::ProcessArea lays out the whole): the
// record of a plain read's or write's wait, with room for a small value
// (PlainWait, crossing.hpp), so that a blocking operation allocates nothing.
struct WaitArea {
    alignas(16) std::byte plain_wait[128];
};

// WaiterQueue: FIFO of waiters, intrusive, guarded by the channel lock.
struct WaiterQueue {
    Waiter* head = nullptr;
    Waiter* tail = nullptr;

    bool empty() const noexcept { return head == nullptr; }
    void push(Waiter* w) noexcept {
        w->next = nullptr;
        w->prev = tail;
        if (tail) tail->next = w; else head = w;
        tail = w;
        w->queued = true;
    }
    // pop_front takes the oldest waiter (the queue must not be empty).
    Waiter* pop_front() noexcept {
        Waiter* w = head;
        head = w->next;
        if (head) head->prev = nullptr; else tail = nullptr;
        w->next = nullptr;
        w->queued = false;
        return w;
    }
    void remove(Waiter* w) noexcept {
        if (w->prev) w->prev->next = w->next; else head = w->next;
        if (w->next) w->next->prev = w->prev; else tail = w->prev;
        w->prev = w->next = nullptr;
        w->queued = false;
    }
};

// InFlight: the waiter of another OS process that the holder of a lock
// (a channel's, a barrier's) is completing, from before it wins the
// waiter's wait until that process is readied, all under the lock: if the
// holder dies on the way, whoever repairs the lock's object finishes that
// wait (runtime::rescue).
struct InFlight {
    runtime::Parker* parker = nullptr;
    std::uint64_t token = 0;
    std::uint32_t index = 0;
};

}  // namespace csp::channels
