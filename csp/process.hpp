// process.hpp: processes and the combinators that run them.
//
//   auto worker = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
//       for (;;) out.write(in.read() * 2);
//   });
//   csp::Parallel(worker(a.reader(), b.writer()) * 4, sink(b.reader()));
//
// csp::process(f) makes a factory; calling it binds arguments into a
// Process, which runs only when a combinator (Parallel, Sequence, Spawn)
// runs it, as a fiber. What a Process holds and how a combinator runs it:
// csp/detail/call.hpp. Processes in OS processes of their own:
// csp/multiprocess.hpp.
#pragma once

#include "csp/channel.hpp"
#include "csp/detail/call.hpp"
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
    // (The body is called as a non-const F of the process's own: a mutable
    // lambda keeps state in its by-value captures.)
    template <class... A>
    static auto invoke_result() {
        if constexpr (std::is_invocable_v<F&, A&&...>) {
            return std::type_identity<std::invoke_result_t<F&, A&&...>>{};
        } else {
            static_assert(std::is_invocable_v<F&, A&...>,
                          "csp::process: the body cannot be called with these arguments");
            return std::type_identity<std::invoke_result_t<F&, A&...>>{};
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
// run_parallel: Parallel over parts, each a process or a vector of them. A
// DeadlockError is rethrown as itself (its report names the cycle, not a
// wrapper); otherwise the first failure in order, as a ProcessError naming
// its process.
template <class... Ps>
std::tuple<typename Part<Ps>::Result...> run_parallel(Ps&... parts) {
    std::tuple<typename Part<Ps>::Slots...> slots{Part<Ps>::slots_for(parts)...};
    Launch launch((Part<Ps>::count(parts) + ... + std::size_t{0}));
    std::apply([&](auto&... s) { (Part<Ps>::add(launch, parts, &s), ...); }, slots);
    launch.run();
    return std::apply(
        [](auto&... s) {
            (Part<Ps>::check_deadlock(s), ...);
            (Part<Ps>::check(s), ...);
            return std::tuple<typename Part<Ps>::Result...>(Part<Ps>::take(s)...);
        },
        slots);
}
}  // namespace detail

// Parallel(vector): run a runtime-sized set of processes of one result
// type concurrently; return when all have ended, their results in order.
template <class R>
std::vector<detail::result_t<R>> Parallel(std::vector<Process<R>> procs) {
    return std::get<0>(detail::run_parallel(procs));
}

// Parallel(parts...): the same for processes and vectors of processes in
// any mix, Parallel(producer, workers, consumer): a tuple of their results
// in argument order (std::monostate for a void process, a std::vector for
// a vector).
template <class... Ps>
    requires((detail::ProcessPart<Ps> && ...) && !(sizeof...(Ps) == 1 && (detail::is_process_vector_v<Ps> && ...)))
std::tuple<typename detail::Part<Ps>::Result...> Parallel(Ps... parts) {
    return detail::run_parallel(parts...);
}

// Sequence(vector): run them one after another; results as for Parallel.
template <class R>
std::vector<detail::result_t<R>> Sequence(std::vector<Process<R>> procs) {
    std::vector<detail::result_t<R>> results;
    results.reserve(procs.size());
    for (auto& p : procs) results.push_back(std::move(std::get<0>(Parallel(std::move(p)))));
    return results;
}

namespace detail {
template <class R>
result_t<R> run_alone(Process<R>& p) {
    return std::get<0>(Parallel(std::move(p)));
}
template <class R>
std::vector<result_t<R>> run_alone(std::vector<Process<R>>& v) {
    return Sequence(std::move(v));
}
}  // namespace detail

// Sequence(parts...): one after another, a vector's processes in order.
template <class... Ps>
    requires((detail::ProcessPart<Ps> && ...) && !(sizeof...(Ps) == 1 && (detail::is_process_vector_v<Ps> && ...)))
std::tuple<typename detail::Part<Ps>::Result...> Sequence(Ps... parts) {
    // (Braces: the elements are made in order.)
    return std::tuple<typename detail::Part<Ps>::Result...>{detail::run_alone(parts)...};
}

// Spawn(parts...): start them and return at once. A spawned process is
// joined when the spawning process (or main's scope of the runtime) ends;
// its failure is logged, since nobody waits for its result.
template <class... Ps>
    requires(detail::ProcessPart<Ps> && ...)
void Spawn(Ps... parts) {
    detail::Launch launch;
    (detail::Part<Ps>::add(launch, parts, nullptr), ...);
    launch.spawn();
}

// proc * n, n * proc: n copies of a process, each with its own copies of the
// arguments (and so its own channel ends). From a temporary, the last copy
// is the process itself: no copy of its ends outlives the vector (written
// inside Parallel(p, worker(in, out) * 4, c), a temporary lives until
// Parallel has returned, and an end it kept would stop its channel from
// ever retiring).
template <class R>
std::vector<Process<R>> operator*(const Process<R>& p, std::size_t n) {
    std::vector<Process<R>> v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(p);
    return v;
}
template <class R>
std::vector<Process<R>> operator*(Process<R>&& p, std::size_t n) {
    Process<R> last(std::move(p));
    std::vector<Process<R>> v;
    if (n == 0) return v;
    v.reserve(n);
    for (std::size_t i = 0; i + 1 < n; ++i) v.push_back(last);
    v.push_back(std::move(last));
    return v;
}
template <class R>
std::vector<Process<R>> operator*(std::size_t n, const Process<R>& p) {
    return p * n;
}
template <class R>
std::vector<Process<R>> operator*(std::size_t n, Process<R>&& p) {
    return std::move(p) * n;
}

// sleep: only the calling process waits. sleep(0) (or less) yields.
template <class Rep, class Period>
void sleep(std::chrono::duration<Rep, Period> d) {
    runtime::sleep_for(std::chrono::ceil<std::chrono::nanoseconds>(d));
}

// yield: let the other runnable processes of this worker run first (and due
// timers fire); a long computation calls it now and then. There is no
// preemption inside a computation: on one worker nothing else runs until a
// process blocks, yields, or (having gone on without waiting for 4-8 ms)
// communicates. From a plain thread it yields the thread.
inline void yield() noexcept { runtime::yield(); }

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
