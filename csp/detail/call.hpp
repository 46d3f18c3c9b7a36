// detail/call.hpp: what a Process holds and what a combinator runs.
//
// A Process<R> holds one Call<R>: the callable and its arguments, bound
// but not called. A combinator turns it into the runtime's ProcessBody (the
// same object: no second record around it), which reports its outcome into
// a Slot<R> and arrives at the combinator's Join. Launch is the part every
// combinator shares: make the bodies, start them, wait (or not).
// Invariants:
//   - invoke() consumes the callable and its arguments: whatever they hold
//     (channel ends) is gone before the process arrives at its join, so a
//     peer sees the retire before Parallel returns.
//   - A process ended by ChannelPoisonException or ChannelRetireException
//     has ended normally; any other exception is its failure (rule 3 of
//     detail/unwinding.hpp).
#pragma once

#include "channels/channel.hpp"
#include "csp/detail/unwinding.hpp"
#include "csp/errors.hpp"
#include "runtime/runtime.hpp"
#include "runtime/trace.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp {

namespace channels {
struct ChannelCore;
}

template <class R>
class Process;

namespace detail {

// result_t: what a combinator returns for a process of result R.
template <class R>
using result_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

// Name: a process's name, shared by the Process objects and bodies made
// from one factory (copying a shared pointer, not the string).
using Name = std::shared_ptr<const std::string>;

// Outcome of one process run by a combinator.
template <class R>
struct Slot {
    std::optional<result_t<R>> result;
    std::exception_ptr error;
    bool deadlock = false;  // error is the DeadlockError that ended it
    // The process's name, in the Process object the combinator holds until
    // it returns (a pointer rather than a third copy of every name).
    const std::string* name = nullptr;
};

// start_spawned starts processes that the calling process (or, in a thread,
// the runtime at exit) joins when it ends.
void start_spawned(std::vector<std::unique_ptr<runtime::ProcessBody>>& bodies);
// join_spawned waits for the processes the calling process spawned.
void join_spawned() noexcept;

// JoinRef: a shared Join. Each process holds a reference until it has
// arrived: the last arrival's wake-up still reads the Join after the joiner
// may have seen the count reach zero and returned.
using JoinRef = std::shared_ptr<runtime::Join>;

// EndSeen: told of each channel end a process holds among its arguments
// (for deadlock explanations): the channel, and whether it is a reader end.
using EndSeen = void (*)(void* ctx, const channels::ChannelCore* channel, bool reader);
// BarrierSeen: told of each barrier end it holds among its arguments.
using BarrierSeen = void (*)(void* ctx, const channels::BarrierCore* barrier);

// BodyBase: what every process body shares: the Join it arrives at.
class BodyBase : public runtime::ProcessBody {
public:
    // join_at: arrive at `j` when done (set before the process starts).
    void join_at(JoinRef j) noexcept {
        group_ = j ? j->waited_as() : nullptr;
        join_ = std::move(j);
    }
    // group: the Join it arrives at, as its joiner's wait reason; set
    // before it starts and kept after it has arrived (when the Join may be
    // gone: compared, never read).
    const void* group() const noexcept { return group_; }
    // held_ends: the ends it holds, for deadlock explanations (only while
    // it is parked): those among the arguments it was called with, but for
    // those it has retired since (forget_end). What its callable captured
    // is out of sight, and an end it handed on still counts.
    virtual void held_ends(EndSeen, void*) const noexcept {}
    virtual void forget_end(const channels::ChannelCore*, bool /*reader*/) noexcept {}
    // held_barriers / forget_barrier: the same for barrier ends (one that
    // resigned is forgotten).
    virtual void held_barriers(BarrierSeen, void*) const noexcept {}
    virtual void forget_barrier(const channels::BarrierCore*) noexcept {}
    // bound_ends: the ends among the arguments it will be called with (not
    // yet invoked): where csp::on_rank places them (libcsp-mpi chooses a
    // channel's home rank by them). What its callable captured is out of
    // sight here too.
    virtual void bound_ends(EndSeen, void*) const noexcept {}

protected:
    JoinRef join_;

private:
    const void* group_ = nullptr;
};

// HeldEnd: one end among a call's arguments, as its call began: its
// channel's address, with the low bit set for a reader end, or a barrier's
// with the next bit set (8 bytes per end;
// channels are aligned; a relaxed atomic, since a view of the network may
// read it while its process runs: csp::write_graph). No reference is kept (a
// spawn pays no atomic count for it): the channel may be gone once the end
// is handed on, so an explanation only compares this address with those of
// channels some process waits on, and never reads through it.
class HeldEnd {
public:
    static std::uintptr_t bits(const channels::ChannelCore* c, bool reader) noexcept {
        return reinterpret_cast<std::uintptr_t>(c) | (reader ? 1u : 0u);
    }
    static std::uintptr_t bits(const channels::BarrierCore* b) noexcept {
        return reinterpret_cast<std::uintptr_t>(b) | 2u;
    }
    void set(const channels::ChannelCore* c, bool reader) noexcept { bits_.store(bits(c, reader), std::memory_order_relaxed); }
    void set(const channels::BarrierCore* b) noexcept { bits_.store(bits(b), std::memory_order_relaxed); }
    void clear() noexcept { bits_.store(0, std::memory_order_relaxed); }
    // seen: tells `see` of it, if set (and a channel's end).
    void seen(EndSeen see, void* ctx) const noexcept {
        const std::uintptr_t b = bits_.load(std::memory_order_relaxed);
        if (b && !(b & 2u)) see(ctx, reinterpret_cast<const channels::ChannelCore*>(b & ~std::uintptr_t{1}), b & 1u);
    }
    // seen_barrier: tells `see` of it, if set (and a barrier's end).
    void seen_barrier(BarrierSeen see, void* ctx) const noexcept {
        const std::uintptr_t b = bits_.load(std::memory_order_relaxed);
        if (b & 2u) see(ctx, reinterpret_cast<const channels::BarrierCore*>(b & ~std::uintptr_t{3}));
    }
    // holds: it is the end `b` (one of bits() above).
    bool holds(std::uintptr_t b) const noexcept { return bits_.load(std::memory_order_relaxed) == b; }

private:
    std::atomic<std::uintptr_t> bits_{0};
};

// end_count_v<X>: how many ends an argument of type X is (vectors of ends
// count apart: vector_of_ends_v): a channel's (channel_end_v) or a
// barrier's (barrier_end_v).
template <class X>
inline constexpr bool channel_end_v = requires(const X& x) { x.held_channel(); X::kReaderEnd; };
template <class X>
inline constexpr bool barrier_end_v = requires(const X& x) { x.held_barrier(); };
template <class X>
inline constexpr std::size_t end_count_v = channel_end_v<X> || barrier_end_v<X> ? 1 : 0;
template <class X>
inline constexpr bool vector_of_ends_v = false;
template <class X>
inline constexpr bool vector_of_ends_v<std::vector<X>> = end_count_v<X> == 1;
template <class X>
inline constexpr bool vector_of_channel_ends_v = false;
template <class X>
inline constexpr bool vector_of_channel_ends_v<std::vector<X>> = channel_end_v<X>;

// HeldEnds<Args...>: the ends among arguments of types Args, noted when the
// call begins (note) and shown until it ends (clear). Takes no room for a
// call without ends.
template <class... Args>
class HeldEnds {
public:
    static constexpr std::size_t kFixed = (end_count_v<Args> + ... + std::size_t{0});
    static constexpr bool kVectors = (vector_of_ends_v<Args> || ...);

    void note(const std::tuple<Args...>& args) noexcept {
        if constexpr (kVectors) {
            std::size_t n = 0;
            std::apply([&](const auto&... a) { (count_in(a, n), ...); }, args);
            more_.reset(new (std::nothrow) HeldEnd[n]);  // (none: the explanation goes without)
            more_count_ = more_ ? n : 0;
        }
        std::size_t k = 0, m = 0;
        std::apply([&](const auto&... a) { (note_one(a, k, m), ...); }, args);
    }
    void clear() noexcept {
        for_each([](HeldEnd& h) { h.clear(); });
    }
    void seen(EndSeen see, void* ctx) const noexcept {
        const_cast<HeldEnds*>(this)->for_each([&](HeldEnd& h) { h.seen(see, ctx); });
    }
    void seen_barriers(BarrierSeen see, void* ctx) const noexcept {
        const_cast<HeldEnds*>(this)->for_each([&](HeldEnd& h) { h.seen_barrier(see, ctx); });
    }
    // forget: the first note of that end is cleared (its process retired or
    // resigned it).
    void forget(const channels::BarrierCore* b) noexcept { forget_bits(HeldEnd::bits(b)); }
    void forget(const channels::ChannelCore* c, bool reader) noexcept { forget_bits(HeldEnd::bits(c, reader)); }

private:
    void forget_bits(std::uintptr_t end) noexcept {
        bool done = false;
        for_each([&](HeldEnd& h) {
            if (!done && h.holds(end)) {
                h.clear();
                done = true;
            }
        });
    }
    template <class F>
    void for_each(F&& f) noexcept {
        if constexpr (kFixed > 0) {
            for (HeldEnd& h : fixed_) f(h);
        }
        if constexpr (kVectors) {
            for (std::size_t i = 0; i < more_count_; ++i) f(more_[i]);
        }
    }
    template <class X>
    static void count_in(const X& x, std::size_t& n) noexcept {
        if constexpr (vector_of_ends_v<X>) n += x.size();
    }
    template <class X>
    static void set_one(HeldEnd& h, const X& x) noexcept {
        if constexpr (channel_end_v<X>) {
            if (x.held_channel()) h.set(x.held_channel(), X::kReaderEnd);
        } else {
            if (x.held_barrier()) h.set(x.held_barrier());
        }
    }
    template <class X>
    void note_one(const X& x, std::size_t& k, std::size_t& m) noexcept {
        if constexpr (end_count_v<X> == 1) {
            set_one(fixed_[k], x);
            ++k;
        } else if constexpr (vector_of_ends_v<X>) {
            for (const auto& e : x) {
                if (m < more_count_) set_one(more_[m], e);
                ++m;
            }
        }
    }
    struct Empty {};
    [[no_unique_address]] std::conditional_t<(kFixed > 0), std::array<HeldEnd, kFixed>, Empty> fixed_{};
    // (Vectors: an array made once, when the call begins, and kept until
    // the call goes, so that a view may read it while the process runs.)
    [[no_unique_address]] std::conditional_t<kVectors, std::unique_ptr<HeldEnd[]>, Empty> more_{};
    [[no_unique_address]] std::conditional_t<kVectors, std::size_t, Empty> more_count_{};
};

void log_spawned_failure(const char* name, std::exception_ptr e) noexcept;
// trace_failure: a process ends by exception e: an instant in the trace
// (CSP_TRACE), with its message.
void trace_failure(std::exception_ptr e) noexcept;

// Call: one deferred call of a callable with its arguments, held by a
// Process until a combinator runs it; then the same object is what the
// runtime runs (one record per process, not a call and a body around it).
template <class R>
class Call : public BodyBase {
public:
    virtual std::unique_ptr<Call> clone() const = 0;
    // invoke consumes the callable and arguments: nothing of them is left in
    // the Call when it returns or throws (they may hold channel ends, which
    // must be gone before the process arrives at its join).
    virtual R invoke() = 0;

    // report_to: where run() leaves the outcome (nullptr: log a failure).
    void report_to(Slot<R>* s) noexcept { slot_ = s; }

    void run() noexcept final {
        run_call(*this, slot_);
        join_spawned();
        if (join_) {
            join_->arrive();  // the combinator may return at once: our reference keeps the Join
            join_.reset();
        }
    }

    static void run_call(Call& call, Slot<R>* slot) noexcept {
        try {
            if constexpr (std::is_void_v<R>) {
                call.invoke();
                if (slot) slot->result.emplace();
            } else {
                R r = call.invoke();
                if (slot) slot->result.emplace(std::move(r));
            }
        } catch (const ChannelPoisonException&) {
        } catch (const ChannelRetireException&) {
        } catch (const DeadlockError&) {
            if (runtime::tracing()) trace_failure(std::current_exception());
            if (slot) {
                slot->error = std::current_exception();
                slot->deadlock = true;
            } else {
                log_spawned_failure(runtime::current_name(), std::current_exception());
            }
        } catch (...) {
            if (runtime::tracing()) trace_failure(std::current_exception());
            if (slot) slot->error = std::current_exception();
            else log_spawned_failure(runtime::current_name(), std::current_exception());
        }
    }

private:
    Slot<R>* slot_ = nullptr;
};

template <class R, class F, class... Args>
class BoundCall final : public Call<R> {
public:
    template <class G, class... A>
    explicit BoundCall(G&& g, A&&... a)
        : bound_(std::in_place, std::forward<G>(g), std::tuple<Args...>(std::forward<A>(a)...)) {}

    std::unique_ptr<Call<R>> clone() const override {
        if constexpr (std::is_copy_constructible_v<F> &&
                      (std::is_copy_constructible_v<Args> && ...)) {
            return std::unique_ptr<Call<R>>(new BoundCall(bound_));
        } else {
            throw UsageError("csp: this process holds a move-only argument and cannot be copied");
        }
    }

    R invoke() override {
        struct Clear {  // (also when moving them out throws)
            std::optional<Bound>& bound;
            ~Clear() { bound.reset(); }
        } clear{bound_};
        F body = std::move(bound_->f);
        std::tuple<Args...> local = std::move(bound_->args);
        bound_.reset();
        held_.note(local);
        struct Shown {
            HeldEnds<Args...>& held;
            ~Shown() { held.clear(); }
        } shown{held_};
        try {
            if constexpr (std::is_invocable_v<F&, Args&&...>) {
                return std::apply(body, std::move(local));
            } else {
                return std::apply(body, local);
            }
        } catch (const ChannelRetireException&) {
            throw;
        } catch (...) {
            std::apply([](auto&... a) { poison_ends(a...); }, local);
            throw;
        }
    }

    void held_ends(EndSeen see, void* ctx) const noexcept override { held_.seen(see, ctx); }
    void forget_end(const channels::ChannelCore* c, bool reader) noexcept override { held_.forget(c, reader); }
    void held_barriers(BarrierSeen see, void* ctx) const noexcept override { held_.seen_barriers(see, ctx); }
    void forget_barrier(const channels::BarrierCore* b) noexcept override { held_.forget(b); }
    void bound_ends(EndSeen see, void* ctx) const noexcept override {
        if (!bound_) return;
        const auto one = [&](const auto& x) {
            using X = std::decay_t<decltype(x)>;
            if constexpr (channel_end_v<X>) {
                if (x.held_channel()) see(ctx, x.held_channel(), X::kReaderEnd);
            } else if constexpr (vector_of_channel_ends_v<X>) {
                for (const auto& e : x) {
                    if (e.held_channel()) see(ctx, e.held_channel(), std::decay_t<decltype(e)>::kReaderEnd);
                }
            }
        };
        std::apply([&](const auto&... a) { (one(a), ...); }, bound_->args);
    }

private:
    struct Bound {
        template <class G>
        Bound(G&& g, std::tuple<Args...>&& a) : f(std::forward<G>(g)), args(std::move(a)) {}
        F f;
        std::tuple<Args...> args;
    };
    explicit BoundCall(const std::optional<Bound>& b) : bound_(b) {}
    std::optional<Bound> bound_;  // empty once invoked
    HeldEnds<Args...> held_;  // the ends among them, while invoked
};

// Discard: a Process<R> seen as a Process<void>.
template <class R>
class Discard final : public Call<void> {
public:
    explicit Discard(std::unique_ptr<Call<R>> c) : inner_(std::move(c)) {}
    std::unique_ptr<Call<void>> clone() const override {
        return std::make_unique<Discard>(inner_->clone());
    }
    // (The inner call's invoke consumes its callable and arguments; the
    // emptied call stays until this one goes, for held_ends.)
    void invoke() override { (void)inner_->invoke(); }
    void held_ends(EndSeen see, void* ctx) const noexcept override { inner_->held_ends(see, ctx); }
    void forget_end(const channels::ChannelCore* c, bool reader) noexcept override { inner_->forget_end(c, reader); }
    void held_barriers(BarrierSeen see, void* ctx) const noexcept override { inner_->held_barriers(see, ctx); }
    void forget_barrier(const channels::BarrierCore* b) noexcept override { inner_->forget_barrier(b); }
    void bound_ends(EndSeen see, void* ctx) const noexcept override { inner_->bound_ends(see, ctx); }

private:
    std::unique_ptr<Call<R>> inner_;
};

// rethrow_failure throws a ProcessError naming `name` around `e`.
[[noreturn]] void rethrow_failure(const std::string& name, std::exception_ptr e);

template <class R>
std::unique_ptr<Call<R>>& call_of(Process<R>& p) noexcept;
template <class R>
const std::string& name_of(const Process<R>& p) noexcept;
template <class R>
const Name& shared_name_of(const Process<R>& p) noexcept;



// Launch: the processes one combinator starts together. Launch(n) makes
// n processes that run() starts and waits for (Parallel); Launch() makes
// ones that spawn() starts without waiting (Spawn).
class Launch {
public:
    explicit Launch(std::size_t n) : join_(std::make_shared<runtime::Join>(static_cast<std::int64_t>(n))) {
        bodies_.reserve(n);
    }
    Launch() = default;

    // add: p's call becomes a body reporting into `slot` (nullptr: its
    // failure is logged); p is left empty.
    template <class R>
    void add(Process<R>& p, Slot<R>* slot) {
        auto& call = call_of(p);
        if (!call) throw UsageError("csp: a moved-from Process cannot run");
        call->report_to(slot);
        call->join_at(join_);
        call->name = shared_name_of(p);
        if (slot) slot->name = &name_of(p);
        bodies_.push_back(std::unique_ptr<runtime::ProcessBody>(call.release()));
    }

    void run() {
        channels::launching();
        runtime::start_processes(bodies_);
        join_->wait();
    }
    void spawn() {
        channels::launching();
        start_spawned(bodies_);
    }

private:
    JoinRef join_;
    std::vector<std::unique_ptr<runtime::ProcessBody>> bodies_;
};

// take_result: the result of a process. One that ended by poison or retire
// (normally, but without returning) gives a value-initialised result.
template <class R>
result_t<R> take_result(Slot<R>& s) {
    if (s.result) return std::move(*s.result);
    if constexpr (std::is_default_constructible_v<result_t<R>>) {
        return result_t<R>{};
    } else {
        throw UsageError("process '" + *s.name + "' ended by poison or retire and its result type has "
                              "no default value");
    }
}

template <class R>
void check_deadlock(Slot<R>& s) {
    if (s.deadlock) std::rethrow_exception(s.error);
}
template <class R>
void check(Slot<R>& s) {
    if (s.error) rethrow_failure(*s.name, s.error);
}


// Part<P>: one argument of a variadic combinator, a Process<R> or a
// std::vector of them (as PyCSP users write Parallel(p, workers, c)): how
// many processes it holds, where their outcomes go, what it returns.
template <class P>
struct Part;
template <class R>
struct Part<Process<R>> {
    using Result = result_t<R>;
    using Slots = Slot<R>;
    static std::size_t count(const Process<R>&) noexcept { return 1; }
    static Slots slots_for(const Process<R>&) { return {}; }
    static void add(Launch& launch, Process<R>& p, Slots* s) { launch.add(p, s); }
    static void check_deadlock(Slots& s) { detail::check_deadlock(s); }
    static void check(Slots& s) { detail::check(s); }
    static Result take(Slots& s) { return take_result(s); }
};
template <class R>
struct Part<std::vector<Process<R>>> {
    using Result = std::vector<result_t<R>>;
    using Slots = std::vector<Slot<R>>;
    static std::size_t count(const std::vector<Process<R>>& v) noexcept { return v.size(); }
    static Slots slots_for(const std::vector<Process<R>>& v) { return Slots(v.size()); }
    static void add(Launch& launch, std::vector<Process<R>>& v, Slots* s) {
        for (std::size_t i = 0; i < v.size(); ++i) launch.add(v[i], s ? &(*s)[i] : nullptr);
    }
    static void check_deadlock(Slots& s) {
        for (auto& x : s) detail::check_deadlock(x);
    }
    static void check(Slots& s) {
        for (auto& x : s) detail::check(x);
    }
    static Result take(Slots& s) {
        Result results;
        results.reserve(s.size());
        for (auto& x : s) results.push_back(take_result(x));
        return results;
    }
};

// ProcessPart<P>: P is a Process<R> or a std::vector of them.
template <class P>
concept ProcessPart = requires { typename Part<P>::Result; };
template <class P>
inline constexpr bool is_process_vector_v = false;
template <class R>
inline constexpr bool is_process_vector_v<std::vector<Process<R>>> = true;

}  // namespace detail

}  // namespace csp
