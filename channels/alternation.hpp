// alternation.hpp: the alternation (external choice) engine.
//
// A choice is a list of guards: inputs and outputs on channels, skip, and
// timeouts. The engine is Go's selectgo over the channel core's
// one-waiter-record protocol (channel.hpp), with a cheap first look:
//
//   0. try the enabled guards one by one in the order the policy gives, each
//      under its own channel's lock only; the first that can communicate now
//      does so, and the choice is over (the common case of a busy choice,
//      which thus never locks, or sorts, the other channels);
//   1. otherwise lock every guard's channel (in address order, each once)
//      and poll again, all at once this time;
//   2. otherwise start one wait, put one Waiter per channel guard on its
//      channel's queue (all pointing at the same selection word), unlock and
//      park (with the earliest timeout as deadline). A partner that wins the
//      word completes the communication of that guard, under that channel's
//      lock, exactly as for a plain read or write;
//   3. lock the channels again and take the waiters that lost off their
//      queues, so that none is left behind when the records are reused.
//
// While the choice holds its locks in pass 1 none of its waiters is queued,
// so it can never meet itself, and a partner's waiter it meets is either
// won (the partner's word, by compare-and-swap) or stale and dropped. Pri,
// fair and arbitrary choice differ only in the order of pass 1.
//
// A retired channel disables its guard: a retire that ends the wait in pass 2
// sends the choice back to pass 1 with the same deadline. When the choice has
// enabled channel guards and every one is retired, it ends Retired, even if
// a skip or timeout guard could fire (a server alting over its requests and
// a timeout ends when its clients have gone). Guards whose pre-condition is
// false take no part: with nothing enabled the choice waits for ever
// (occam's STOP), until the deadlock detector ends it. A poisoned channel
// makes its guard ready; the caller turns that into an exception.
#pragma once

#include "channels/barrier.hpp"
#include "channels/channel.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace csp::channels {

// Guard: one alternative of a choice, as the typed layer describes it. A
// plain aggregate with no default initialisers, so that arrays of them cost
// nothing to set up; give every field when making one.
struct Guard {
    // (ExtendedInput: an input guard whose read is an extended one; its slot
    // is an ExtendedSlot. Barrier: an alting barrier (barrier.hpp); its slot
    // is the BarrierCore, `core` is null.)
    enum class Kind : std::uint8_t { Input, Output, Skip, Timeout, ExtendedInput, Barrier };
    Kind kind;
    bool enabled;       // the pre-condition
    ChannelCore* core;  // Input / Output
    void* slot;         // Input: raw storage to construct into; Output: value to move from
    std::chrono::steady_clock::time_point deadline;  // Timeout
    std::uint64_t epoch = 0;  // Barrier: the member's (barrier_enrol)
};

// ExtendedSlot: an extended input guard's slot: where its value goes, and,
// once it fired, what it holds until its action returns (end_extended).
struct ExtendedSlot {
    void* value;
    Held held;
};

// Order: the order in which pass 1 tries the guards.
struct Order {
    enum class Kind : std::uint8_t {
        Priority,    // 0, 1, ..., n-1
        RoundRobin,  // first, first+1, ..., wrapping around
        Random,      // a fresh uniformly random permutation
    };
    Kind kind = Kind::Priority;
    std::size_t first = 0;
};

// Choice: how a choice ended. Done: guard `index` fired (its value moved).
// Poisoned: guard `index`'s channel is poisoned. Retired: the choice has
// enabled channel guards and every one is retired. Deadlocked: the runtime
// broke a deadlock (a STOP included).
struct Choice {
    Outcome outcome;
    std::size_t index;
};

// SmallArray: n elements on the stack when few, on the heap when many (the
// per-choice scratch arrays of the engine and of the typed layer). Elements
// of a trivial type start uninitialised.
template <class T, std::size_t Inline = 16>
class SmallArray {
public:
    explicit SmallArray(std::size_t n) : data_(n <= Inline ? inline_ : (heap_ = std::make_unique<T[]>(n)).get()) {}
    T& operator[](std::size_t i) noexcept { return data_[i]; }
    T* data() noexcept { return data_; }
    T* begin() noexcept { return data_; }

private:
    T inline_[Inline];
    std::unique_ptr<T[]> heap_;
    T* data_;
};

// choose runs one choice over guards[0..n). Blocks only the calling process.
Choice choose(Guard* guards, std::size_t n, Order order);

}  // namespace csp::channels
