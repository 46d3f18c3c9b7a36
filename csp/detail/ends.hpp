// detail/ends.hpp: what a channel's ends share, and what a Channel<T>
// tells the untyped channel layer about T.
//
// An end holds one counted reference to its ChannelCore and counts once on
// its side (readers or writers) while it is alive and not retired; copies
// are further ends. A channel retires on a side when that count reaches
// zero. Invariants:
//   - Every end that joined leaves exactly once: by retire(), or by its
//     destructor (which poisons first when its process unwinds from
//     anything but a retire: rule 1 of detail/unwinding.hpp).
//   - While t_forgetting is set, a destroyed end neither leaves nor
//     releases: the forked child that owns its copy does.
#pragma once

#include "channels/barrier.hpp"
#include "channels/channel.hpp"
#include "csp/detail/unwinding.hpp"
#include "csp/errors.hpp"
#include "csp/detail/storage.hpp"
#include "csp/serialize.hpp"

#include <exception>
#include <memory>
#include <new>
#include <source_location>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace csp {

namespace detail {

// Boxed values. The channel layer moves values under a spin lock, in the
// middle of a hand-over, where a move that throws could only terminate. So
// a T whose move constructor may throw travels boxed: the channel moves a
// T* to a heap box, and the moves of T itself happen in the writer (into
// the box) and in the reader (out of it), each of whom gets the exception
// one throws. What a throwing move means for the value: one that throws in
// the writer leaves the value with the writer and sends nothing; one that
// throws in the reader (in read, or taking a choice's value) loses that
// value, which was already taken from the channel. A box moved by the
// channel layer is handed on (the source pointer is nulled); one packed for
// another OS process stays with its writer, who frees it.
template <class T>
inline constexpr bool boxed_v = !std::is_nothrow_move_constructible_v<T>;
// wire_t<T>: what the channel layer moves for values of T.
template <class T>
using wire_t = std::conditional_t<boxed_v<T>, T*, T>;

// The packers of T, or nullptr for a type that cannot cross OS processes
// (instantiated only for one that can).
template <class T>
constexpr auto pack_fn() noexcept {
    using Fn = channels::Parcel* (*)(const void*) noexcept;
    if constexpr (!Transferable<T>) return Fn{nullptr};
    else if constexpr (boxed_v<T>) return Fn{&pack_boxed<T>};
    else return Fn{&pack_value<T>};
}
template <class T>
constexpr auto unpack_fn() noexcept {
    using Fn = bool (*)(channels::Parcel*, void*) noexcept;
    if constexpr (!Transferable<T>) return Fn{nullptr};
    else if constexpr (boxed_v<T>) return Fn{&unpack_boxed<T>};
    else return Fn{&unpack_value<T>};
}

template <class T>
constexpr auto elements_fn() noexcept {
    using Fn = const void* (*)(const void*, std::uint64_t*, std::size_t*) noexcept;
    if constexpr (Contiguous<T>::value) return Fn{&contiguous_elements<T>};
    else return Fn{nullptr};
}

template <class T>
const channels::ValueOps* value_ops() noexcept {
    if constexpr (boxed_v<T>) {
        static const channels::ValueOps ops{
            sizeof(T*), alignof(T*),
            [](void* dst, void* src) noexcept { *static_cast<T**>(dst) = std::exchange(*static_cast<T**>(src), nullptr); },
            [](void* p) noexcept { delete *static_cast<T**>(p); },
            false,
            pack_fn<T>(),
            unpack_fn<T>(),
            typeid(T).name(),
            nullptr,
        };
        return &ops;
    } else {
        static const channels::ValueOps ops{
            sizeof(T), alignof(T),
            [](void* dst, void* src) noexcept { ::new (dst) T(std::move(*static_cast<T*>(src))); },
            [](void* p) noexcept { static_cast<T*>(p)->~T(); },
            std::is_trivially_copyable_v<T>,
            pack_fn<T>(),
            unpack_fn<T>(),
            typeid(T).name(),
            elements_fn<T>(),
        };
        return &ops;
    }
}

// take_value<T>(storage): the T a channel read (or a choice) left in
// `storage` (a wire_t<T>), moved out once.
template <class T>
T take_value(void* storage) {
    if constexpr (boxed_v<T>) {
        std::unique_ptr<T> box(*std::launder(static_cast<T**>(storage)));
        return std::move(*box);  // (a move that throws loses the value: see above)
    } else {
        return take_out<T>(storage);
    }
}

// t_forgetting: while set, ends and channel handles destroyed on this
// thread do not leave or release their channel; they are listed here
// instead. A multiprocess's parent drops its copy of the child's arguments
// this way: the forked child owns those ends (and their counts) now.
struct Forgotten {
    std::vector<channels::ChannelCore*> ends;     // one entry per end (not retired)
    std::vector<channels::ChannelCore*> handles;  // one per Channel<T> handle
    std::vector<channels::BarrierCore*> barrier_ends;     // one per enrolled BarrierEnd
    std::vector<channels::BarrierCore*> barrier_handles;  // one per Barrier, or resigned end
};
inline thread_local Forgotten* t_forgetting = nullptr;

// t_placed_elsewhere: while set (csp::on_rank dropping, on this rank, a
// process placed on another), a barrier end or handle destroyed on this
// thread lists its barrier there (placed_elsewhere, with a reference). For
// as long as that process runs there, the barrier has a member on another
// rank. A barrier made in the SPMD part is shared by the ranks and counts
// that member there; one made otherwise (before the World) is not, so a
// sync on it here is a UsageError, not a phase that silently leaves that
// member out
// (BarrierCore::elsewhere counts such processes; csp/barrier.hpp).
inline thread_local std::vector<channels::BarrierCore*>* t_placed_elsewhere = nullptr;
inline void placed_elsewhere(channels::BarrierCore* b) {
    if (b->shared_id) return;  // (shared by the ranks: its members there count)
    channels::barrier_acquire(b);
    t_placed_elsewhere->push_back(b);
}
// PlacedElsewhere: while it lives, barriers of the ends and handles
// destroyed on this thread are listed (see t_placed_elsewhere); then each
// counts one more process elsewhere until end() (once that process is over).
class PlacedElsewhere {
public:
    PlacedElsewhere() noexcept { t_placed_elsewhere = &barriers_; }
    ~PlacedElsewhere() { end(); }
    PlacedElsewhere(const PlacedElsewhere&) = delete;  // (t_placed_elsewhere points at it)
    PlacedElsewhere& operator=(const PlacedElsewhere&) = delete;
    // listed: stop listing; each listed barrier now counts the process.
    void listed() noexcept {
        t_placed_elsewhere = nullptr;
        for (channels::BarrierCore* b : barriers_) b->elsewhere.fetch_add(1, std::memory_order_relaxed);
        counted_ = true;
    }
    // end: the process placed elsewhere is over.
    void end() noexcept {
        if (t_placed_elsewhere == &barriers_) t_placed_elsewhere = nullptr;
        for (channels::BarrierCore* b : barriers_) {
            if (counted_) b->elsewhere.fetch_sub(1, std::memory_order_relaxed);
            channels::barrier_release(b);
        }
        barriers_.clear();
    }

private:
    std::vector<channels::BarrierCore*> barriers_;
    bool counted_ = false;
};

std::string derived_name(const char* kind, const std::source_location& where);

[[noreturn]] void throw_outcome(channels::Outcome o, const channels::ChannelCore* c);
[[noreturn]] void throw_empty_end(const char* what);
[[noreturn]] void throw_retired_end(const char* channel);
// forget_held_end: the calling process retired an end of c of that side:
// deadlock explanations no longer count it as held (detail/call.hpp).
void forget_held_end(const channels::ChannelCore* c, bool reader) noexcept;
// forget_held_barrier: the same for an end of barrier b that resigned.
void forget_held_barrier(const channels::BarrierCore* b) noexcept;

// EndBase: what reader and writer ends share: one counted reference to the
// channel and whether this end has retired.
template <bool IsReader>
class EndBase : public EndTag {
public:
    EndBase() noexcept = default;
    explicit EndBase(channels::ChannelCore* c) noexcept : core_(c) {
        channels::acquire(c);
        join();
    }
    EndBase(const EndBase& other) noexcept : core_(other.core_) {
        if (core_) {
            channels::acquire(core_);
            join();
        }
    }
    EndBase(EndBase&& other) noexcept
        : core_(std::exchange(other.core_, nullptr)), retired_(other.retired_) {}
    EndBase& operator=(EndBase other) noexcept {
        std::swap(core_, other.core_);
        std::swap(retired_, other.retired_);
        return *this;
    }
    ~EndBase() { leave(); }

    // retire: this end leaves its channel; using it again throws
    // ChannelRetireException. Retiring twice is harmless.
    void retire() {
        check();
        if (!retired_) {
            retired_ = true;
            IsReader ? channels::leave_reader(core_) : channels::leave_writer(core_);
            forget_held_end(core_, IsReader);
        }
    }

    // poison: the channel is poisoned at once, for every end of it.
    void poison() {
        check();
        channels::poison(core_);
    }

    // name of the channel.
    const char* name() const noexcept { return core_ ? core_->name : ""; }

    // valid: false for a default-constructed or moved-from end.
    explicit operator bool() const noexcept { return core_ != nullptr; }

    // held_channel: the channel this end counts on, or null (moved from,
    // retired). For deadlock explanations (detail/call.hpp's held_ends).
    static constexpr bool kReaderEnd = IsReader;
    const channels::ChannelCore* held_channel() const noexcept { return retired_ ? nullptr : core_; }

protected:
    friend struct EndAccess;
    void check() const {
        if (!core_) throw_empty_end(IsReader ? "ChannelIn" : "ChannelOut");
    }
    channels::ChannelCore* usable() const {
        check();
        if (retired_) throw_retired_end(core_->name);
        return core_;
    }

private:
    void join() noexcept { IsReader ? channels::join_reader(core_) : channels::join_writer(core_); }
    void leave() noexcept {
        if (!core_) return;
        if (t_forgetting) [[unlikely]] {
            if (!retired_) {
                t_forgetting->ends.push_back(core_);
                channels::count_end(core_, -1);  // (in a child: handed on to a grandchild)
            }
            core_ = nullptr;
            return;
        }
        if (!retired_) {
            // The unwinding rule: an end destroyed while its process unwinds
            // from anything but a retire poisons its channel.
            if (std::uncaught_exceptions() > 0 && !unwinding_from_retire()) channels::poison(core_);
            IsReader ? channels::leave_reader(core_) : channels::leave_writer(core_);
        }
        channels::release(core_);
        core_ = nullptr;
    }

    channels::ChannelCore* core_ = nullptr;
    bool retired_ = false;
};

// EndAccess: how guards (alternation.hpp) reach the channel of an end.
struct EndAccess {
    template <bool IsReader>
    static channels::ChannelCore* usable(const EndBase<IsReader>& end) {
        return end.usable();
    }
    // handle_core: the channel of a Channel<T> handle (csp/channel.hpp).
    template <class Handle>
    static channels::ChannelCore* handle_core(const Handle& handle) noexcept {
        return handle.core_;
    }
};

}  // namespace detail

}  // namespace csp
