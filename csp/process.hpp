// process.hpp: processes and the combinators that run them.
#pragma once

#include "csp/channel.hpp"
#include "csp/errors.hpp"
#include "runtime/runtime.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp {

template <class R = void>
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

}  // namespace detail

// Process<R>: a deferred call of a process body returning R; nothing runs
// until a combinator runs it. Process<> (Process<void>) accepts any process
// and discards its result. Copies hold their own copies of the arguments.
template <class R>
class Process {
public:
    using result_type = R;

    Process(std::string name, std::unique_ptr<detail::Call<R>> call)
        : name_(std::make_shared<const std::string>(std::move(name))), call_(std::move(call)) {}
    // (The name shared with the factory and the other processes it made.)
    Process(detail::Name name, std::unique_ptr<detail::Call<R>> call)
        : name_(std::move(name)), call_(std::move(call)) {}

    template <class U>
        requires(std::is_void_v<R> && !std::is_void_v<U>)
    Process(Process<U> other)
        : name_(detail::shared_name_of(other)),
          call_(std::make_unique<detail::Discard<U>>(std::move(detail::call_of(other)))) {}

    Process(const Process& other)
        : name_(other.name_), call_(other.call_ ? other.call_->clone() : nullptr) {}
    Process(Process&&) noexcept = default;
    Process& operator=(const Process& other) {
        if (this != &other) {
            name_ = other.name_;
            call_ = other.call_ ? other.call_->clone() : nullptr;
        }
        return *this;
    }
    Process& operator=(Process&&) noexcept = default;

    // name of the process (given, or derived from where it was defined).
    const std::string& name() const noexcept { return detail::name_of(*this); }
    // named: the same process under another name.
    Process named(std::string n) && {
        name_ = std::make_shared<const std::string>(std::move(n));
        return std::move(*this);
    }

private:
    template <class U>
    friend std::unique_ptr<detail::Call<U>>& detail::call_of(Process<U>&) noexcept;
    template <class U>
    friend const detail::Name& detail::shared_name_of(const Process<U>&) noexcept;

    detail::Name name_;  // null only in a moved-from Process
    std::unique_ptr<detail::Call<R>> call_;
};

template <class R>
std::unique_ptr<detail::Call<R>>& detail::call_of(Process<R>& p) noexcept {
    return p.call_;
}
template <class R>
const detail::Name& detail::shared_name_of(const Process<R>& p) noexcept {
    return p.name_;
}
template <class R>
const std::string& detail::name_of(const Process<R>& p) noexcept {
    static const std::string none;
    const Name& name = shared_name_of(p);
    return name ? *name : none;
}

// ProcessFactory: a "decorated" callable: calling it with arguments returns
// a Process; the arguments are copied or moved into it.
template <class F>
class ProcessFactory {
public:
    ProcessFactory(F f, std::string name)
        : f_(std::move(f)), name_(std::make_shared<const std::string>(std::move(name))) {}

    template <class... Args>
    auto operator()(Args&&... args) const {
        using R = typename decltype(invoke_result<std::decay_t<Args>...>())::type;
        return Process<R>(name_, std::make_unique<detail::BoundCall<R, F, std::decay_t<Args>...>>(
                                     f_, std::forward<Args>(args)...));
    }

    const std::string& name() const noexcept { return *name_; }

private:
    template <class... A>
    static auto invoke_result() {
        if constexpr (std::is_invocable_v<const F&, A&&...>) {
            return std::type_identity<std::invoke_result_t<const F&, A&&...>>{};
        } else {
            static_assert(std::is_invocable_v<const F&, A&...>,
                          "csp::process: the body cannot be called with these arguments");
            return std::type_identity<std::invoke_result_t<const F&, A&...>>{};
        }
    }

private:
    F f_;
    detail::Name name_;
};

// process(f): a process factory; each process it makes runs as a fiber.
template <class F>
ProcessFactory<std::decay_t<F>> process(F&& f, std::source_location where = std::source_location::current()) {
    return {std::forward<F>(f), detail::derived_name("process", where)};
}

// process(name, f): the same, with a given name.
template <class F>
ProcessFactory<std::decay_t<F>> process(std::string name, F&& f) {
    return {std::forward<F>(f), std::move(name)};
}

namespace detail {

// body_for turns a process into what the runtime runs, reporting into `slot`
// and arriving at `join` when done.
template <class R>
std::unique_ptr<runtime::ProcessBody> body_for(Process<R>& p, Slot<R>* slot, const JoinRef& join) {
    auto& call = call_of(p);
    if (!call) throw UsageError("csp: a moved-from Process cannot run");
    call->report_to(slot);
    call->join_at(join);
    call->name = shared_name_of(p);
    if (slot) slot->name = &name_of(p);
    return std::unique_ptr<runtime::ProcessBody>(call.release());
}

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

}  // namespace detail

// Parallel(procs...): run all concurrently; return when all have ended, with
// their results in argument order (std::monostate for void processes).
template <class... Rs>
std::tuple<detail::result_t<Rs>...> Parallel(Process<Rs>... procs) {
    std::tuple<detail::Slot<Rs>...> slots;
    auto join = std::make_shared<runtime::Join>(static_cast<std::int64_t>(sizeof...(Rs)));
    std::vector<std::unique_ptr<runtime::ProcessBody>> bodies;
    bodies.reserve(sizeof...(Rs));
    std::apply([&](auto&... s) { (bodies.push_back(detail::body_for(procs, &s, join)), ...); }, slots);
    runtime::start_processes(bodies);
    join->wait();
    std::apply([](auto&... s) { (detail::check_deadlock(s), ...); }, slots);
    std::apply([](auto&... s) { (detail::check(s), ...); }, slots);
    return std::apply([](auto&... s) { return std::tuple<detail::result_t<Rs>...>(detail::take_result(s)...); },
                      slots);
}

// Parallel(vector): the same for a runtime-sized set of one result type.
template <class R>
std::vector<detail::result_t<R>> Parallel(std::vector<Process<R>> procs) {
    std::vector<detail::Slot<R>> slots(procs.size());
    auto join = std::make_shared<runtime::Join>(static_cast<std::int64_t>(procs.size()));
    std::vector<std::unique_ptr<runtime::ProcessBody>> bodies;
    bodies.reserve(procs.size());
    for (std::size_t i = 0; i < procs.size(); ++i) bodies.push_back(detail::body_for(procs[i], &slots[i], join));
    runtime::start_processes(bodies);
    join->wait();
    for (auto& s : slots) detail::check_deadlock(s);
    for (auto& s : slots) detail::check(s);
    std::vector<detail::result_t<R>> results;
    results.reserve(slots.size());
    for (auto& s : slots) results.push_back(detail::take_result(s));
    return results;
}

// Sequence(procs...): run one after another; results as for Parallel.
template <class... Rs>
std::tuple<detail::result_t<Rs>...> Sequence(Process<Rs>... procs) {
    return std::tuple<detail::result_t<Rs>...>{std::get<0>(Parallel(std::move(procs)))...};
}

template <class R>
std::vector<detail::result_t<R>> Sequence(std::vector<Process<R>> procs) {
    std::vector<detail::result_t<R>> results;
    results.reserve(procs.size());
    for (auto& p : procs) results.push_back(std::move(std::get<0>(Parallel(std::move(p)))));
    return results;
}

// Spawn(procs...): start them and return at once. A spawned process is
// joined when the spawning process (or main's scope of the runtime) ends;
// its failure is logged, since nobody waits for its result.
template <class... Rs>
void Spawn(Process<Rs>... procs) {
    std::vector<std::unique_ptr<runtime::ProcessBody>> bodies;
    (bodies.push_back(detail::body_for(procs, static_cast<detail::Slot<Rs>*>(nullptr), detail::JoinRef())), ...);
    detail::start_spawned(bodies);
}

template <class R>
void Spawn(std::vector<Process<R>> procs) {
    std::vector<std::unique_ptr<runtime::ProcessBody>> bodies;
    for (auto& p : procs) bodies.push_back(detail::body_for(p, static_cast<detail::Slot<R>*>(nullptr), detail::JoinRef()));
    detail::start_spawned(bodies);
}

// proc * n, n * proc: n copies of a process, each with its own copies of the
// arguments (and so its own channel ends).
template <class R>
std::vector<Process<R>> operator*(const Process<R>& p, std::size_t n) {
    std::vector<Process<R>> v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(p);
    return v;
}
template <class R>
std::vector<Process<R>> operator*(std::size_t n, const Process<R>& p) {
    return p * n;
}

// sleep: only the calling process waits.
template <class Rep, class Period>
void sleep(std::chrono::duration<Rep, Period> d) {
    runtime::sleep_for(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
}

// io(f, args...): run a blocking call on a helper thread; only the calling
// process waits. Returns f's result; rethrows its exception.
template <class F, class... Args>
auto io(F&& f, Args&&... args) -> std::invoke_result_t<F, Args...> {
    using R = std::invoke_result_t<F, Args...>;
    std::exception_ptr error;
    std::optional<detail::result_t<R>> result;
    const std::function<void()> call = [&] {
        try {
            if constexpr (std::is_void_v<R>) {
                std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
            } else {
                result.emplace(std::invoke(std::forward<F>(f), std::forward<Args>(args)...));
            }
        } catch (...) {
            error = std::current_exception();
        }
    };
    runtime::run_io(call);
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) return std::move(*result);
}

}  // namespace csp
