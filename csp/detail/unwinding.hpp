// detail/unwinding.hpp: what csp keeps per process, and the unwinding rule.
//
// The unwinding rule (API.md): an end destroyed while its process unwinds
// from ChannelRetireException retires; one destroyed while it unwinds from
// any other exception poisons. So retire and poison pass on through every
// end a process owns, and a process that fails with an ordinary exception
// shuts its neighbours down instead of leaving them blocked. Three pieces
// make it, all here:
//   1. An end's destructor must know whether the exception in flight is a
//      retire. A ChannelRetireException marks its process while it is alive
//      (mark_retire_in_flight, from its constructors; cleared by its
//      destructor, at the end of the catch that handled it): the mark is
//      the uncaught-exception count at which it unwinds, so an end asks
//      unwinding_from_retire() and compares (EndBase::leave, channel.hpp).
//   2. Ends a body took by reference are not destroyed while it unwinds:
//      when a body fails with anything but a retire, BoundCall poisons every
//      end among its arguments (poison_ends).
//   3. A process that ends with poison or retire has ended normally
//      (Call::run_call, detail/call.hpp).
#pragma once

#include "channels/waiter.hpp"
#include "runtime/runtime.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <type_traits>
#include <vector>

namespace csp::detail {

// ProcessArea: what csp keeps per process in its parker (runtime::Parker::
// upper, zeroed when the parker is made). Layout of the whole area: the
// channel layer's part first, where channels/ looks for it.
struct ProcessArea {
    channels::WaitArea waits;
    // The unwinding rule's mark (1. above): 0, or the uncaught-exception
    // count at which a live ChannelRetireException of this process unwinds.
    std::int64_t retire_mark;
    // The Join of the processes this process spawned (Spawn), or null.
    std::shared_ptr<runtime::Join>* spawned;
};
static_assert(offsetof(ProcessArea, waits) == 0, "channels/ finds its WaitArea at the start");

inline ProcessArea& area_of(runtime::Parker* p) noexcept { return runtime::upper_area<ProcessArea>(p); }

// mark_retire_in_flight / clear_retire_mark: a ChannelRetireException of
// process p is made / is gone (errors.cpp).
inline void mark_retire_in_flight(runtime::Parker* p) noexcept {
    area_of(p).retire_mark = std::uncaught_exceptions() + 1;
}
inline void clear_retire_mark(runtime::Parker* p) noexcept { area_of(p).retire_mark = 0; }

// unwinding_from_retire: true while the caller's process unwinds from a
// ChannelRetireException.
inline bool unwinding_from_retire() noexcept {
    return area_of(runtime::current()).retire_mark == std::uncaught_exceptions();
}

// EndTag: the base of every end that follows the rule (channel ends).
struct EndTag {};

// poison_ends(args...): 2. above. Poisons each argument that is an end, and
// each end in a std::vector argument.
template <class X>
void poison_end(X& x) noexcept {
    if constexpr (std::is_base_of_v<EndTag, X>) {
        if (x) x.poison();  // (a valid end's poison does not throw)
    }
}
template <class X>
void poison_end(std::vector<X>& v) noexcept {
    for (auto& x : v) poison_end(x);
}
template <class... X>
void poison_ends(X&... x) noexcept {
    (poison_end(x), ...);
}

}  // namespace csp::detail
