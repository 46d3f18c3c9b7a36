// channel.hpp: typed channels and their ends.
#pragma once

#include "channels/channel.hpp"
#include "csp/detail/storage.hpp"
#include "csp/detail/unwinding.hpp"
#include "csp/errors.hpp"
#include "csp/serialize.hpp"
#include "runtime/runtime.hpp"

#include <cstddef>
#include <exception>
#include <new>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace csp {

// Buffer: the capacity of a buffered channel; made by buffer(n).
struct Buffer {
    std::size_t capacity;
};

// buffer(n) asks for a FIFO buffer of n values; n must be in 0..2^28.
inline Buffer buffer(long long n) {
    if (n < 0 || static_cast<unsigned long long>(n) > channels::kMaxBuffer) {
        throw UsageError("csp::buffer(" + std::to_string(n) +
                              "): capacity must be between 0 and " +
                              std::to_string(channels::kMaxBuffer));
    }
    return Buffer{static_cast<std::size_t>(n)};
}

namespace detail {

// The packers of T, or nullptr for a type that cannot cross OS processes
// (instantiated only for one that can).
template <class T>
constexpr auto pack_fn() noexcept {
    using Fn = channels::Parcel* (*)(const void*) noexcept;
    if constexpr (Transferable<T>) return Fn{&pack_value<T>};
    else return Fn{nullptr};
}
template <class T>
constexpr auto unpack_fn() noexcept {
    using Fn = bool (*)(channels::Parcel*, void*) noexcept;
    if constexpr (Transferable<T>) return Fn{&unpack_value<T>};
    else return Fn{nullptr};
}

template <class T>
const channels::ValueOps* value_ops() noexcept {
    static const channels::ValueOps ops{
        sizeof(T), alignof(T),
        [](void* dst, void* src) noexcept { ::new (dst) T(std::move(*static_cast<T*>(src))); },
        [](void* p) noexcept { static_cast<T*>(p)->~T(); },
        std::is_trivially_copyable_v<T>,
        pack_fn<T>(),
        unpack_fn<T>(),
        typeid(T).name(),
    };
    return &ops;
}

// t_forgetting: while set, ends and channel handles destroyed on this
// thread do not leave or release their channel; they are listed here
// instead. A multiprocess's parent drops its copy of the child's arguments
// this way: the forked child owns those ends (and their counts) now.
inline thread_local std::vector<channels::ChannelCore*>* t_forgetting = nullptr;

std::string derived_name(const char* kind, const std::source_location& where);

[[noreturn]] void throw_outcome(channels::Outcome o, const channels::ChannelCore* c);
[[noreturn]] void throw_empty_end(const char* what);
[[noreturn]] void throw_retired_end(const char* channel);

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
            if (!retired_) t_forgetting->push_back(core_);
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
};

}  // namespace detail

// ChannelIn: the reading end of a channel. Copies are further reader ends.
template <class T>
class ChannelIn : public detail::EndBase<true> {
public:
    using value_type = T;
    using detail::EndBase<true>::EndBase;

    // read takes the next value, blocking only the calling process.
    T read() {
        channels::ChannelCore* c = usable();
        alignas(T) unsigned char storage[sizeof(T)];
        const channels::Outcome o = channels::read(c, storage);
        if (o != channels::Outcome::Done) detail::throw_outcome(o, c);
        return detail::take_out<T>(storage);
    }
    T operator()() { return read(); }
};

// ChannelOut: the writing end of a channel. Copies are further writer ends.
template <class T>
class ChannelOut : public detail::EndBase<false> {
public:
    using value_type = T;
    using detail::EndBase<false>::EndBase;

    // write hands `value` to a reader (or the buffer), blocking only the
    // calling process until it is taken.
    void write(T&& value) {
        channels::ChannelCore* c = usable();
        const channels::Outcome o = channels::write(c, std::addressof(value));
        if (o != channels::Outcome::Done) detail::throw_outcome(o, c);
    }
    void write(const T& value) {
        T copy(value);
        write(std::move(copy));
    }
    void operator()(T&& value) { write(std::move(value)); }
    void operator()(const T& value) { write(value); }
};

// Channel: a typed any-to-any channel; a cheap copyable handle.
template <class T>
class Channel {
    static_assert(std::is_move_constructible_v<T>, "csp::Channel<T>: T must be movable");
    static_assert(!std::is_reference_v<T>, "csp::Channel<T>: T must be a value type");

public:
    // Unbuffered: a write completes only when a reader takes the value.
    Channel(std::source_location where = std::source_location::current())
        : Channel(detail::derived_name("channel", where), Buffer{0}) {}
    // Buffered FIFO of buffer(n).
    Channel(Buffer b, std::source_location where = std::source_location::current())
        : Channel(detail::derived_name("channel", where), b) {}
    // Named (names appear in logs, traces and deadlock reports).
    Channel(const char* name, Buffer b = Buffer{0}) : Channel(std::string_view(name), b) {}
    Channel(const std::string& name, Buffer b = Buffer{0}) : Channel(std::string_view(name), b) {}
    Channel(std::string_view name, Buffer b)
        : core_(channels::create(detail::value_ops<T>(), b.capacity, name)) {}

    Channel(const Channel& other) noexcept : core_(other.core_) { channels::acquire(core_); }
    Channel& operator=(const Channel& other) noexcept {
        channels::acquire(other.core_);
        channels::release(core_);
        core_ = other.core_;
        return *this;
    }
    ~Channel() {
        if (detail::t_forgetting) [[unlikely]] {
            detail::t_forgetting->push_back(core_);  // see t_forgetting
            return;
        }
        channels::release(core_);
    }

    // reader / writer make a new end, which joins that side's count.
    ChannelIn<T> reader() const { return ChannelIn<T>(core_); }
    ChannelOut<T> writer() const { return ChannelOut<T>(core_); }

    // poison the channel at once.
    void poison() const { channels::poison(core_); }

    const char* name() const noexcept { return core_->name; }
    std::size_t capacity() const noexcept { return core_->capacity; }

private:
    channels::ChannelCore* core_;
};

// retire(ends...): each end leaves its channel.
template <class... Ends>
void retire(Ends&... ends) {
    (ends.retire(), ...);
}

// poison(ends...): poison the channel of each end.
template <class... Ends>
void poison(Ends&... ends) {
    (ends.poison(), ...);
}

}  // namespace csp
