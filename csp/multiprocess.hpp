// multiprocess.hpp: processes in OS processes of their own.
//
//   auto worker = csp::multiprocess([](csp::ChannelIn<Job> in) { ... });
//   csp::Parallel(worker(jobs.reader()) * 4, collector(results.reader()));
//
// csp::multiprocess(f) is csp::process(f) in a forked OS process: channels
// and barriers handed to it (as arguments, or captured by value) work from
// both sides with the same retire, poison and alternation rules, and its
// result or failure comes back to the combinator. How one runs: csp/multiprocess.cpp;
// how values cross: csp/serialize.hpp and channels/crossing.hpp.
#pragma once

#include "csp/channel.hpp"
#include "csp/detail/storage.hpp"
#include "csp/errors.hpp"
#include "csp/process.hpp"
#include "csp/serialize.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <source_location>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace csp {

namespace detail {

// ChildRecord: what a multiprocess's child leaves for its parent, in the
// arena: its result (packed) or the type and message of its exception.
struct ChildRecord {
    std::atomic<std::uint32_t> go{0};  // the parent has let it start (futex word)
    std::uint32_t state = 0;           // kNothing, kResult or kFailed
    channels::Parcel* result = nullptr;
    channels::Parcel* error_type = nullptr;     // the bytes of a string
    channels::Parcel* error_message = nullptr;
    // The child's ends of each channel it was handed (see EndTally).
    channels::EndTally* tally = nullptr;
    std::size_t tally_size = 0;
    static constexpr std::uint32_t kNothing = 0, kResult = 1, kFailed = 2;
};

// ForkSpec: the typed parts of running one multiprocess.
struct ForkSpec {
    const std::string* name;
    // child: in the child, run the call and fill in the record.
    void (*child)(void* arg, ChildRecord* rec) noexcept;
    // forget: in the parent, destroy the parent's copy of the call.
    void (*forget)(void* arg) noexcept;
    void* arg;
    // Optional: ForkHooks' before_fork and after_fork, with `arg`.
    void (*before_fork)(void* arg) noexcept = nullptr;
    void (*after_fork)(void* arg) noexcept = nullptr;
};

// run_forked forks, lets the child run, waits for it and returns its record
// (free it with free_record), or throws RemoteError (its body failed) or
// OSProcessError (it died; its channels are poisoned).
ChildRecord* run_forked(const ForkSpec& spec);
void free_record(ChildRecord* rec) noexcept;
// record_failure: in the child, note the exception its body ended with.
void record_failure(ChildRecord* rec, std::exception_ptr e) noexcept;
// throw_as_remote: e as the parent of a child that failed with it sees it
// (a RemoteError; poison and retire as they are): a simulated multiprocess.
[[noreturn]] void throw_as_remote(std::exception_ptr e);

// MultiCall: a call that runs in a forked OS process.
template <class R>
class MultiCall final : public Call<R> {
public:
    MultiCall(std::unique_ptr<Call<R>> c, std::string n) : inner_(std::move(c)), os_name_(std::move(n)) {}

    std::unique_ptr<Call<R>> clone() const override {
        return std::make_unique<MultiCall>(inner_->clone(), os_name_);
    }
    // (Only simulated is it a fiber here holding ends; inner_ then stays.)
    void held_ends(EndSeen see, void* ctx) const noexcept override {
        if (runtime::simulating() && inner_) inner_->held_ends(see, ctx);
    }
    void forget_end(const channels::ChannelCore* c, bool reader) noexcept override {
        if (runtime::simulating() && inner_) inner_->forget_end(c, reader);
    }
    void held_barriers(BarrierSeen see, void* ctx) const noexcept override {
        if (runtime::simulating() && inner_) inner_->held_barriers(see, ctx);
    }
    void forget_barrier(const channels::BarrierCore* b) noexcept override {
        if (runtime::simulating() && inner_) inner_->forget_barrier(b);
    }

    R invoke() override {
        // The parent's copy of the call is gone by the time this returns or
        // throws (once forked, the child's copy owns its channel ends; see
        // forget), or the ends it holds would outlive the process.
        // (Simulated, it runs here as a fiber: csp/sim.hpp; a failure is a
        // RemoteError, as from a child. The inner call's invoke consumes
        // its ends; the call itself stays until this one goes, so that a
        // deadlock's explanation may look at it: held_ends.)
        if (runtime::simulating()) {
            try {
                return inner_->invoke();
            } catch (...) {
                throw_as_remote(std::current_exception());
            }
        }
        struct Drop {
            std::unique_ptr<Call<R>>& inner;
            ~Drop() { inner.reset(); }
        } drop{inner_};
        ChildRecord* rec = run_forked({&os_name_, &child_main, &forget, this});
        struct Free {
            ChildRecord* r;
            ~Free() { free_record(r); }
        } free{rec};
        if constexpr (!std::is_void_v<R>) {
            alignas(R) unsigned char storage[sizeof(R)];
            if (!rec->result || !unpack_value<R>(rec->result, storage)) {
                throw RemoteError("csp::ChannelEndError", "the result of OS process '" + os_name_ +
                                                              "' could not be unpacked");
            }
            return take_out<R>(storage);
        }
    }

private:
    // In the child: run the call as the one process of a Parallel (on the
    // child's own fiber runtime) and leave the outcome in the record.
    static void child_main(void* arg, ChildRecord* rec) noexcept;
    static void forget(void* arg) noexcept { static_cast<MultiCall*>(arg)->inner_.reset(); }

    std::unique_ptr<Call<R>> inner_;
    std::string os_name_;
};

// Crossable<X>: an argument of type X can be handed to an OS process; a
// channel end or handle only when its values can cross.
template <class X>
struct Crossable : std::true_type {};
template <class T>
struct Crossable<ChannelIn<T>> : std::bool_constant<Transferable<T>> {};
template <class T>
struct Crossable<ChannelOut<T>> : std::bool_constant<Transferable<T>> {};
template <class T>
struct Crossable<Channel<T>> : std::bool_constant<Transferable<T>> {};
template <class X>
struct Crossable<std::vector<X>> : Crossable<X> {};

template <class X>
constexpr void check_crossable() {
    static_assert(Crossable<X>::value,
                  "csp::multiprocess: this argument is a channel end whose values cannot cross OS "
                  "processes; make the value type trivially copyable, or give it a cereal "
                  "serialize function (see csp/serialize.hpp)");
}

}  // namespace detail

// MultiProcessFactory: like ProcessFactory, but each process it makes runs
// in its own (forked) OS process.
template <class F>
class MultiProcessFactory {
public:
    MultiProcessFactory(F f, std::string name) : inner_(std::move(f), std::move(name)) {}

    template <class... Args>
    auto operator()(Args&&... args) const {
        (detail::check_crossable<std::decay_t<Args>>(), ...);
        auto p = inner_(std::forward<Args>(args)...);
        using R = typename decltype(p)::result_type;
        static_assert(std::is_void_v<R> || Transferable<R>,
                      "csp::multiprocess: the body's result must cross OS processes; make it "
                      "trivially copyable, or give it a cereal serialize function");
        return Process<R>(detail::shared_name_of(p),
                          std::make_unique<detail::MultiCall<R>>(std::move(detail::call_of(p)), p.name()));
    }

    const std::string& name() const noexcept { return inner_.name(); }

private:
    ProcessFactory<F> inner_;
};

// multiprocess(f): a process factory whose processes each run in a forked
// OS process. Channels handed to it (as arguments, or captured by value)
// work from both sides; its result comes back to the combinator.
template <class F>
MultiProcessFactory<std::decay_t<F>> multiprocess(F&& f, std::source_location where = std::source_location::current()) {
    return {std::forward<F>(f), detail::derived_name("multiprocess", where)};
}

// multiprocess(name, f): the same, with a given name.
template <class F>
MultiProcessFactory<std::decay_t<F>> multiprocess(std::string name, F&& f) {
    return {std::forward<F>(f), std::move(name)};
}

namespace detail {

template <class R>
void MultiCall<R>::child_main(void* arg, ChildRecord* rec) noexcept {
    auto* self = static_cast<MultiCall*>(arg);
    try {
        auto results = Parallel(Process<R>(self->os_name_, std::move(self->inner_)));
        if constexpr (!std::is_void_v<R>) {
            rec->result = pack_value<R>(&std::get<0>(results));
            if (!rec->result) {  // (the parent gets what its serialization threw)
                if (std::exception_ptr e = take_pack_failure()) std::rethrow_exception(e);
                throw ChannelEndError("the result could not be packed");
            }
        }
        rec->state = ChildRecord::kResult;
    } catch (const ProcessError& e) {
        record_failure(rec, e.original());
    } catch (...) {
        record_failure(rec, std::current_exception());
    }
}

}  // namespace detail

}  // namespace csp
