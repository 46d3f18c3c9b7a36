// ports.hpp: csp channels and their ends as Python sees them.
//
// Python holds a channel through ChannelBase and its ends through ReadEnd and
// WriteEnd, whatever the channel's value type: Object (cspp's own channels,
// any Python object) or a C++ type (int64, double, std::string, Bytes and
// tuples of them), for channels made in C++ and handed over (cspp/cspp.hpp).
// Port<T> says how a T becomes a Python object and back.
//
// PyCSP's rule for ends: an end leaves its channel only when it retires. One
// dropped without retiring (a temporary -c, a finished process's argument)
// still counts, as in PyCSP, so the channel never retires on that side (a
// reader then waiting for ever is reported as a deadlock). C++'s rule (a
// dropped end leaves) would make retirement depend on when Python lets go of
// an object.
//
// Every blocking call releases the GIL first, and so does every call that
// takes a channel lock (a new end, leaving, poisoning, a handle's release):
// a thread holding the GIL never waits for a channel lock, and a channel
// lock's holder may take the GIL (to destroy or pickle an Object).
#pragma once

#include "cspp/green.hpp"
#include "cspp/object.hpp"

#include "csp/channel.hpp"
#include "csp/detail/choice.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

namespace cspp {

namespace py = pybind11;
namespace channels = csp::channels;

// Bytes: a C++ channel's value that Python sees as `bytes` (a std::string
// would be `str`).
struct Bytes {
    std::string data;
    template <class Archive>
    void serialize(Archive& archive) {
        archive(data);
    }
};

// Port<T>: T to Python and back, the GIL held.
template <class T>
struct Port {
    static py::object to_python(T&& value) { return py::cast(std::move(value)); }
    static T from_python(py::handle h) {
        try {
            return h.cast<T>();
        } catch (const py::cast_error&) {
            throw py::type_error("cspp: this channel, made in C++, carries values of type " +
                                 py::type_id<T>() + "; " + std::string(py::repr(h)) + " cannot be one");
        }
    }
};
template <>
struct Port<Object> {
    static py::object to_python(Object&& value) {
        PyObject* o = value.release();
        return o ? py::reinterpret_steal<py::object>(o) : py::none();
    }
    static Object from_python(py::handle h) { return Object::steal(h.inc_ref().ptr()); }
};
template <>
struct Port<std::string> {
    static py::object to_python(std::string&& value) { return py::str(value); }
    static std::string from_python(py::handle h) {
        // (Not bytes, which pybind11 would take: a reader could not decode it.)
        if (!PyUnicode_Check(h.ptr())) {
            throw py::type_error("cspp: this channel, made in C++, carries str; " + std::string(py::repr(h)) +
                                 " is not one");
        }
        return h.cast<std::string>();
    }
};
template <>
struct Port<Bytes> {
    static py::object to_python(Bytes&& value) { return py::bytes(value.data); }
    static Bytes from_python(py::handle h) {
        if (!PyBytes_Check(h.ptr())) throw py::type_error("this channel carries bytes");
        return Bytes{h.cast<std::string>()};
    }
};

// without_gil(f): f() with the GIL released if this thread holds it; in a
// green process, on its guest (green.hpp), so that while f waits the
// thread's other green processes run.
template <class F>
decltype(auto) without_gil(F&& f) {
    if (PyGILState_Check()) {
        if (Green* g = t_green; g && !csp::runtime::GuestHost::in_guest()) return on_green(g, f);
        NoGil nogil;
        return f();
    }
    return f();
}

// Owned: the OS process a C++ handle (an end, a channel) belongs to. A forked
// child inherits the parent's Python objects, and its garbage collector may
// drop them: there the handle is let go of without touching the channel,
// which lives in shared memory and is still the parent's (as csp's own
// children never destroy what they inherit). Ends handed to a @multiprocess
// are the child's: adopt() makes them so.
class Owned {
public:
    bool mine() const noexcept { return owner_ == getpid(); }
    void adopt() noexcept { owner_ = getpid(); }

private:
    pid_t owner_ = getpid();
};

class ChannelBase;

// throw_handed_off: an end handed to a @multiprocess is used in its parent.
[[noreturn]] inline void throw_handed_off() {
    throw csp::UsageError("cspp: this channel end was handed to a @multiprocess or a C++ process, which owns "
                          "it now; make another end (+c, -c) for use here");
}

// leak: a handle inherited by a forked child, let go of there without
// touching its channel (see Owned).
template <class T>
void leak(std::optional<T>& handle) noexcept {
    if (handle) ::new (static_cast<void*>(new unsigned char[sizeof(T)])) T(std::move(*handle));
    // (Moved into storage never freed: the move leaves `handle` empty of the
    // channel, so its destructor does nothing; the child exits soon.)
}

// keep_count: an end about to be dropped without retiring joins its side once
// more first (see PyCSP's rule above).
template <class End>
void keep_count(const End& end, void (*join)(channels::ChannelCore*) noexcept) noexcept {
    if (const channels::ChannelCore* c = end.held_channel()) join(const_cast<channels::ChannelCore*>(c));
}

// Held: an output guard's value, converted, for as long as the choice runs.
struct Held {
    virtual ~Held() = default;
    virtual void* slot() noexcept = 0;
};

// ChannelRef: an end's Python Channel object (a reference, the GIL held
// whenever it changes or goes: an end is a Python object's). A plain
// PyObject*, not a py::object, whose type pybind11 hides.
class ChannelRef {
public:
    ChannelRef() = default;
    ChannelRef(const ChannelRef&) = delete;
    ChannelRef& operator=(const ChannelRef&) = delete;
    ~ChannelRef() { Py_XDECREF(p_); }
    py::object get() const { return p_ ? py::reinterpret_borrow<py::object>(p_) : py::none(); }
    void set(const py::object& o) {
        PyObject* old = p_;
        p_ = o.is_none() ? nullptr : o.inc_ref().ptr();
        Py_XDECREF(old);
    }

private:
    PyObject* p_ = nullptr;
};

class ReadEnd : public Owned {
public:
    virtual ~ReadEnd() = default;
    virtual py::object read() = 0;
    virtual void retire() = 0;
    virtual void poison() = 0;
    // another: a new reader end of the same channel.
    virtual std::unique_ptr<ReadEnd> another() const = 0;
    virtual std::string name() const = 0;
    // For a choice: the channel (throws if this end has retired), the size
    // of what a read leaves in storage, and that value taken out of it.
    virtual channels::ChannelCore* usable_core() const = 0;
    virtual std::size_t wire_size() const noexcept = 0;
    virtual py::object take(void* storage) = 0;
    // hand_off: this end now belongs to a forked child (a @multiprocess):
    // dropped here without leaving, while csp's t_forgetting lists it.
    virtual void hand_off() noexcept = 0;
    // let_go: the end leaves its channel as a dropped one does (it still
    // counts: PyCSP's rule); its destructor, and a forked child that was
    // handed it, as the child ends.
    virtual void let_go() noexcept = 0;
    // claimed: listed for a @multiprocess's fork (under the GIL).
    bool claimed = false;
    ChannelRef channel;  // the Channel object it came from (None if unknown)
};

class WriteEnd : public Owned {
public:
    virtual ~WriteEnd() = default;
    virtual void write(py::handle value) = 0;
    virtual void retire() = 0;
    virtual void poison() = 0;
    virtual std::unique_ptr<WriteEnd> another() const = 0;
    virtual std::string name() const = 0;
    virtual channels::ChannelCore* usable_core() const = 0;
    virtual std::unique_ptr<Held> hold(py::handle value) const = 0;
    virtual void hand_off() noexcept = 0;
    // let_go: the end leaves its channel as a dropped one does (it still
    // counts: PyCSP's rule); its destructor, and a forked child that was
    // handed it, as the child ends.
    virtual void let_go() noexcept = 0;
    // claimed: listed for a @multiprocess's fork (under the GIL).
    bool claimed = false;
    ChannelRef channel;
};

class ChannelBase : public Owned {
public:
    virtual ~ChannelBase() = default;
    virtual std::unique_ptr<ReadEnd> reader() const = 0;
    virtual std::unique_ptr<WriteEnd> writer() const = 0;
    virtual void poison() const = 0;
    virtual std::string name() const = 0;
    virtual std::size_t capacity() const = 0;
    // list_for_child: a forked child holds this channel (a handle of it):
    // listed by csp's t_forgetting, the parent's handle kept.
    virtual void list_for_child() const noexcept = 0;
    // release_in_child: in that child, as it ends, the reference it was
    // given lets go (a Python child _exits without destroying anything).
    virtual void release_in_child() const noexcept = 0;
};

// The ends and channels of values of T. Their destructors let go of the
// channel without the GIL (see above), then drop `channel` with it.
template <class T>
class In final : public ReadEnd {
public:
    explicit In(csp::ChannelIn<T> end) : end_(std::move(end)) {}
    ~In() override {
        if (!mine()) {
            leak(end_);
            return;
        }
        let_go();
    }
    py::object read() override {
        T value = without_gil([&] { return live().read(); });
        return Port<T>::to_python(std::move(value));
    }
    void retire() override {
        without_gil([&] { live().retire(); });
    }
    void poison() override {
        without_gil([&] { live().poison(); });
    }
    std::unique_ptr<ReadEnd> another() const override {
        return without_gil([&] { return std::make_unique<In<T>>(csp::ChannelIn<T>(live())); });
    }
    std::string name() const override { return end_ ? end_->name() : "(handed to a @multiprocess)"; }
    channels::ChannelCore* usable_core() const override { return csp::detail::EndAccess::usable(live()); }
    std::size_t wire_size() const noexcept override { return sizeof(csp::detail::wire_t<T>); }
    py::object take(void* storage) override {
        return Port<T>::to_python(csp::detail::take_value<T>(storage));
    }
    void hand_off() noexcept override { end_.reset(); }
    void let_go() noexcept override {
        without_gil([&] {
            if (end_) keep_count(*end_, channels::join_reader);
            end_.reset();
        });
    }
    // take: the C++ end itself, moved out (a C++ process takes it over).
    csp::ChannelIn<T> take_end() {
        csp::ChannelIn<T> e = std::move(live());
        end_.reset();
        return e;
    }
    const csp::ChannelIn<T>& end() const { return live(); }

private:
    csp::ChannelIn<T>& live() const {
        if (!end_) throw_handed_off();
        return *end_;
    }
    mutable std::optional<csp::ChannelIn<T>> end_;
};

template <class T>
struct HeldValue final : Held {
    explicit HeldValue(T v) : value(std::move(v)) {}
    void* slot() noexcept override { return std::addressof(value); }
    T value;
};

template <class T>
class Out final : public WriteEnd {
    static_assert(!csp::detail::boxed_v<T>, "cspp: a channel's value type must move without throwing");

public:
    explicit Out(csp::ChannelOut<T> end) : end_(std::move(end)) {}
    ~Out() override {
        if (!mine()) {
            leak(end_);
            return;
        }
        let_go();
    }
    void write(py::handle value) override {
        T v = Port<T>::from_python(value);
        // (Moved into the call's own frame first: a writer that waits offers
        // its value from there, and a green process's guest stack is the one
        // that stays put while it waits: green.hpp.)
        without_gil([&] {
            T offered = std::move(v);
            live().write(std::move(offered));
        });
    }
    void retire() override {
        without_gil([&] { live().retire(); });
    }
    void poison() override {
        without_gil([&] { live().poison(); });
    }
    std::unique_ptr<WriteEnd> another() const override {
        return without_gil([&] { return std::make_unique<Out<T>>(csp::ChannelOut<T>(live())); });
    }
    std::string name() const override { return end_ ? end_->name() : "(handed to a @multiprocess)"; }
    channels::ChannelCore* usable_core() const override { return csp::detail::EndAccess::usable(live()); }
    std::unique_ptr<Held> hold(py::handle value) const override {
        return std::make_unique<HeldValue<T>>(Port<T>::from_python(value));
    }
    void hand_off() noexcept override { end_.reset(); }
    void let_go() noexcept override {
        without_gil([&] {
            if (end_) keep_count(*end_, channels::join_writer);
            end_.reset();
        });
    }
    csp::ChannelOut<T> take_end() {
        csp::ChannelOut<T> e = std::move(live());
        end_.reset();
        return e;
    }
    const csp::ChannelOut<T>& end() const { return live(); }

private:
    csp::ChannelOut<T>& live() const {
        if (!end_) throw_handed_off();
        return *end_;
    }
    mutable std::optional<csp::ChannelOut<T>> end_;
};

template <class T>
class Typed final : public ChannelBase {
public:
    explicit Typed(csp::Channel<T> ch) : ch_(std::move(ch)) {}
    ~Typed() override {
        if (!mine()) {
            leak(ch_);
            return;
        }
        without_gil([&] { ch_.reset(); });
    }
    std::unique_ptr<ReadEnd> reader() const override {
        return without_gil([&] { return std::make_unique<In<T>>(ch_->reader()); });
    }
    std::unique_ptr<WriteEnd> writer() const override {
        return without_gil([&] { return std::make_unique<Out<T>>(ch_->writer()); });
    }
    void poison() const override {
        without_gil([&] { ch_->poison(); });
    }
    std::string name() const override { return ch_->name(); }
    std::size_t capacity() const override { return ch_->capacity(); }
    void list_for_child() const noexcept override {
        // (A copy, destroyed while listed: it keeps a reference for the child.)
        csp::Channel<T> copy(*ch_);
    }
    void release_in_child() const noexcept override {
        if (ch_) channels::release(csp::detail::EndAccess::handle_core(*ch_));
    }
    const csp::Channel<T>& channel() const { return *ch_; }

private:
    std::optional<csp::Channel<T>> ch_;
};

}  // namespace cspp
