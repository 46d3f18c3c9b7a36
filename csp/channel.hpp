// channel.hpp: typed channels and their ends.
//
//   csp::Channel<int> ch("numbers", csp::buffer(8));
//   auto out = ch.writer();   // ends count: the channel retires on a side
//   auto in = ch.reader();    // when every end of that side has retired
//   out.write(1);
//   int x = in.read();
//
// A Channel<T> is a handle; its ends do the reading and writing, block only
// the calling process, and throw ChannelPoisonException or
// ChannelRetireException when the channel is poisoned or retired. What the
// ends share: csp/detail/ends.hpp; the untyped channel: channels/channel.hpp.
#pragma once

#include "channels/channel.hpp"
#include "csp/detail/ends.hpp"
#include "csp/detail/storage.hpp"
#include "csp/errors.hpp"
#include "csp/serialize.hpp"
#include "runtime/runtime.hpp"

#include <cstddef>
#include <exception>
#include <memory>
#include <functional>
#include <new>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace csp {

// Buffer: how a channel buffers: its capacity, and what a writer finds when
// it is full (the kind). Made by buffer(n), infinite_buffer(),
// overwriting_buffer(n), dropping_buffer(n).
struct Buffer {
    std::size_t capacity;
    channels::BufferKind kind = channels::BufferKind::Fifo;
};

namespace detail {
// checked_capacity: the one check of a capacity, for buffer(n) and for a
// Buffer made by hand, before any channel is made with it.
[[noreturn]] void throw_bad_capacity(const std::string& given);
[[noreturn]] void throw_bad_kind_capacity(const std::string& given);
inline std::size_t checked_capacity(Buffer b) {
    if (b.capacity > channels::kMaxBuffer) throw_bad_capacity("csp::Buffer{" + std::to_string(b.capacity) + "}");
    if (b.capacity == 0 && (b.kind == channels::BufferKind::Overwriting || b.kind == channels::BufferKind::Dropping)) {
        throw_bad_kind_capacity("csp::Buffer{0} of an overwriting or dropping kind");
    }
    return b.capacity;
}
inline std::size_t checked_size(const char* what, long long n, long long least) {
    if (n < least || static_cast<unsigned long long>(n) > channels::kMaxBuffer) {
        const std::string given = std::string("csp::") + what + "(" + std::to_string(n) + ")";
        if (least > 0 && n >= 0 && n < least) throw_bad_kind_capacity(given);
        throw_bad_capacity(given);
    }
    return static_cast<std::size_t>(n);
}
}  // namespace detail

// buffer(n) asks for a FIFO buffer of n values; n must be in 0..2^28. A
// write waits while it is full.
inline Buffer buffer(long long n) { return Buffer{detail::checked_size("buffer", n, 0)}; }

// infinite_buffer(): a FIFO that grows; a write never waits. (One that
// grows past 2^20 values says so once in the log: it is how a missing
// reader shows.)
inline Buffer infinite_buffer() { return Buffer{1, channels::BufferKind::Infinite}; }

// overwriting_buffer(n): a FIFO of n (at least 1) values; a write to a
// full one drops the oldest unread value. A write never waits.
inline Buffer overwriting_buffer(long long n) {
    return Buffer{detail::checked_size("overwriting_buffer", n, 1), channels::BufferKind::Overwriting};
}

// dropping_buffer(n): a FIFO of n (at least 1) values; a write to a full
// one drops the value being written. A write never waits.
inline Buffer dropping_buffer(long long n) {
    return Buffer{detail::checked_size("dropping_buffer", n, 1), channels::BufferKind::Dropping};
}

namespace detail {

// Extended<T>: the value an extended read took (from a wire_t<T> in
// `storage`), owned while the action runs and then by whoever moves it out.
template <class T>
class Extended {
public:
    explicit Extended(void* storage) noexcept {
        if constexpr (boxed_v<T>) box_.reset(*std::launder(static_cast<T**>(storage)));
        else value_.emplace(take_out<T>(storage));  // (a nothrow move: T is not boxed)
    }
    T& get() noexcept {
        if constexpr (boxed_v<T>) return *box_;
        else return *value_;
    }

private:
    std::unique_ptr<T> box_;
    std::optional<T> value_;
};

// run_extended: an extended read of channel c took the value in `storage`
// and holds *held: the action runs on the value, then what was held is let
// go (its writer's write completes); if the action throws, the channel is
// poisoned (the writer's write throws ChannelPoisonException) and the
// exception goes on. Then `then` gets the value (to move it out).
template <class T, class F, class Then>
auto run_extended(channels::ChannelCore* c, channels::Held* held, void* storage, F& action, Then then) {
    bool ended = false;
    try {
        Extended<T> value(storage);
        const T& seen = value.get();
        using R = std::decay_t<std::invoke_result_t<F&, const T&>>;
        if constexpr (std::is_void_v<R>) {
            std::invoke(action, seen);
            ended = true;
            channels::end_extended(c, held, true);
            return then(value.get());
        } else {
            R result = std::invoke(action, seen);
            ended = true;
            channels::end_extended(c, held, true);
            (void)then(value.get());
            return result;
        }
    } catch (...) {
        if (!ended) channels::end_extended(c, held, false);
        throw;
    }
}
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
        using Wire = detail::wire_t<T>;
        alignas(Wire) unsigned char storage[sizeof(Wire)];
        const channels::Outcome o = channels::read(c, storage);
        if (o != channels::Outcome::Done) detail::throw_outcome(o, c);
        return detail::take_value<T>(storage);
    }
    T operator()() { return read(); }

    // extended_read: an extended rendezvous. The next value is taken and
    // `action` runs on it (as const T&); only when it returns does the
    // writer's write (or output guard) complete, and on a buffered channel
    // the value's slot stays occupied until then. Returns what the action
    // returns. If the action throws, the channel is poisoned (the waiting
    // writer gets ChannelPoisonException) and the exception goes on.
    // (A reference the action returns is returned as a copy: what it refers
    // to may be the value, gone by then.)
    template <class F>
        requires std::is_invocable_v<F&, const T&>
    std::decay_t<std::invoke_result_t<F&, const T&>> extended_read(F&& action) {
        channels::ChannelCore* c = usable();
        using Wire = detail::wire_t<T>;
        alignas(Wire) unsigned char storage[sizeof(Wire)];
        channels::Held held;
        const channels::Outcome o = channels::read_extended(c, storage, &held);
        if (o != channels::Outcome::Done) detail::throw_outcome(o, c);
        return detail::run_extended<T>(c, &held, storage, action, [](T&) {});
    }
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
        if constexpr (detail::boxed_v<T>) {
            auto box = std::make_unique<T>(std::move(value));  // (a move that throws: nothing sent)
            T* wire = box.get();
            const channels::Outcome o = channels::write(c, &wire);
            if (!wire) (void)box.release();  // handed on; otherwise packed, or not sent: still ours
            if (o != channels::Outcome::Done) {
                // (Handed on and still not Done: an extended reader took it
                // and then the channel was poisoned. The value is gone.)
                if constexpr (std::is_move_assignable_v<T>) {
                    if (box) {
                        try {
                            value = std::move(*box);  // not sent: the value stays the writer's
                        } catch (...) {
                        }
                    }
                }
                detail::throw_outcome(o, c);
            }
        } else {
            const channels::Outcome o = channels::write(c, std::addressof(value));
            if (o != channels::Outcome::Done) detail::throw_outcome(o, c);
        }
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
        : core_(channels::create(detail::value_ops<T>(), detail::checked_capacity(b), name, b.kind)) {}

    Channel(const Channel& other) noexcept : core_(other.core_) { channels::acquire(core_); }
    Channel& operator=(const Channel& other) noexcept {
        channels::acquire(other.core_);
        channels::release(core_);
        core_ = other.core_;
        return *this;
    }
    ~Channel() {
        if (detail::t_forgetting) [[unlikely]] {
            detail::t_forgetting->handles.push_back(core_);  // see t_forgetting
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
    friend struct detail::EndAccess;
    channels::ChannelCore* core_;
};

// retire(ends...): each end leaves its channel (an end made for the call,
// `csp::retire(ch.writer())`, too).
template <class... Ends>
void retire(Ends&&... ends) {
    (ends.retire(), ...);
}

// poison(ends...): poison the channel of each end.
template <class... Ends>
void poison(Ends&&... ends) {
    (ends.poison(), ...);
}

}  // namespace csp
