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

#include "csp/detail/unwinding.hpp"
#include "csp/errors.hpp"
#include "runtime/runtime.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp {

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

// BodyBase: what every process body shares: the Join it arrives at.
class BodyBase : public runtime::ProcessBody {
public:
    // join_at: arrive at `j` when done (set before the process starts).
    void join_at(JoinRef j) noexcept { join_ = std::move(j); }

protected:
    JoinRef join_;
};

void log_spawned_failure(const char* name, std::exception_ptr e) noexcept;

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
            if (slot) {
                slot->error = std::current_exception();
                slot->deadlock = true;
            } else {
                log_spawned_failure(runtime::current_name(), std::current_exception());
            }
        } catch (...) {
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

private:
    struct Bound {
        template <class G>
        Bound(G&& g, std::tuple<Args...>&& a) : f(std::forward<G>(g)), args(std::move(a)) {}
        F f;
        std::tuple<Args...> args;
    };
    explicit BoundCall(const std::optional<Bound>& b) : bound_(b) {}
    std::optional<Bound> bound_;  // empty once invoked
};

// Discard: a Process<R> seen as a Process<void>.
template <class R>
class Discard final : public Call<void> {
public:
    explicit Discard(std::unique_ptr<Call<R>> c) : inner_(std::move(c)) {}
    std::unique_ptr<Call<void>> clone() const override {
        return std::make_unique<Discard>(inner_->clone());
    }
    void invoke() override {
        std::unique_ptr<Call<R>> inner = std::move(inner_);
        (void)inner->invoke();
    }

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
        runtime::start_processes(bodies_);
        join_->wait();
    }
    void spawn() { start_spawned(bodies_); }

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
