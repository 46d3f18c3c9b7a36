// alternation.hpp: external choice. Guards, csp::Alternation, and the
// select functions AltSelect, PriSelect and FairSelect.
//
//   csp::Alternation alt{
//       csp::InputGuard(jobs, [](Job j) { handle(j); }),
//       csp::OutputGuard(results, latest, [] { sent(); }),
//       csp::TimeoutGuard(100ms, [] { tick(); }),
//   };
//   alt.fair_execute();
//
// Exactly one guard fires per choice, and its communication happens inside
// the choice. The engine is channels/alternation.hpp; this file only turns
// typed guards into its guard records and back.
#pragma once

#include "channels/alternation.hpp"
#include "csp/channel.hpp"
#include "csp/errors.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp {

namespace detail {

// GuardBase: the pre-condition every guard has.
template <class Derived>
class GuardBase {
public:
    // when(cond): a false pre-condition disables the guard for this choice.
    Derived& when(bool cond) & {
        enabled_ = cond;
        return static_cast<Derived&>(*this);
    }
    Derived&& when(bool cond) && {
        enabled_ = cond;
        return static_cast<Derived&&>(*this);
    }
    bool enabled() const noexcept { return enabled_; }

private:
    bool enabled_ = true;
};

// EndRef: a guard's channel end, referenced when the caller passed an end it
// keeps (an lvalue), owned when it passed a temporary (`ch.reader()`).
template <class End>
class EndRef {
public:
    explicit EndRef(End& end) noexcept : ref_(&end) {}
    explicit EndRef(End&& end) noexcept : owned_(std::move(end)) {}
    End& get() noexcept { return ref_ ? *ref_ : owned_; }

private:
    End* ref_ = nullptr;
    End owned_;
};

template <class F>
std::function<void()> nullary_action(F&& f) {
    static_assert(std::is_invocable_v<F&>, "csp: this guard's action must be callable with no arguments");
    return std::function<void()>(std::forward<F>(f));
}

}  // namespace detail

// InputGuard: ready when its channel has a value to read (or is poisoned).
// The action, if any, receives the value read (or takes no argument).
template <class T>
class InputGuard : public detail::GuardBase<InputGuard<T>> {
public:
    using value_type = T;

    InputGuard(ChannelIn<T>& in) : end_(in) {}
    // (A guard takes an end, not a Channel: one line instead of a page of
    // failed deduction for the easy slip.)
    template <class... A>
    InputGuard(const Channel<T>&, A&&...) : end_(ChannelIn<T>{}) {
        static_assert(sizeof...(A) < 0, "csp::InputGuard takes a channel end: pass ch.reader(), not the Channel");
    }
    InputGuard(ChannelIn<T>&& in) : end_(std::move(in)) {}
    template <class F>
    InputGuard(ChannelIn<T>& in, F&& action) : end_(in), action_(make_action(std::forward<F>(action))) {}
    template <class F>
    InputGuard(ChannelIn<T>&& in, F&& action)
        : end_(std::move(in)), action_(make_action(std::forward<F>(action))) {}

    // The engine's record of this guard; the value read goes to `storage`.
    channels::Guard record(void* storage) {
        channels::Guard g{channels::Guard::Kind::Input, this->enabled(), nullptr, nullptr, {}};
        if (g.enabled) g.core = detail::EndAccess::usable(end_.get());
        g.slot = storage;
        return g;
    }
    void run_action(T&& value) {
        if (action_) action_(std::move(value));
    }

private:
    template <class F>
    static std::function<void(T)> make_action(F&& f) {
        if constexpr (std::is_invocable_v<F&, T>) {
            return std::function<void(T)>(std::forward<F>(f));
        } else {
            static_assert(std::is_invocable_v<F&>,
                          "csp::InputGuard: the action must be callable with the value read, or with no arguments");
            return [g = std::forward<F>(f)](T) mutable { g(); };
        }
    }

    detail::EndRef<ChannelIn<T>> end_;
    std::function<void(T)> action_;
};

// OutputGuard: ready when its channel can take `value` now (or is poisoned).
template <class T>
class OutputGuard : public detail::GuardBase<OutputGuard<T>> {
public:
    using value_type = T;

    OutputGuard(ChannelOut<T>& out, std::type_identity_t<T> value) : end_(out), value_(std::move(value)) {}
    template <class... A>
    OutputGuard(const Channel<T>&, A&&...) : end_(ChannelOut<T>{}) {
        static_assert(sizeof...(A) < 0, "csp::OutputGuard takes a channel end: pass ch.writer(), not the Channel");
    }
    OutputGuard(ChannelOut<T>&& out, std::type_identity_t<T> value)
        : end_(std::move(out)), value_(std::move(value)) {}
    template <class F>
    OutputGuard(ChannelOut<T>& out, std::type_identity_t<T> value, F&& action)
        : end_(out), value_(std::move(value)), action_(detail::nullary_action(std::forward<F>(action))) {}
    template <class F>
    OutputGuard(ChannelOut<T>&& out, std::type_identity_t<T> value, F&& action)
        : end_(std::move(out)), value_(std::move(value)), action_(detail::nullary_action(std::forward<F>(action))) {}

    // The engine's record of this guard. `copy` holds a copy of the value to
    // send when the guard must keep its own (it may fire again); otherwise
    // the guard's value itself is moved out when it fires.
    channels::Guard record(std::optional<T>& copy, bool keep_value) {
        channels::Guard g{channels::Guard::Kind::Output, this->enabled(), nullptr, nullptr, {}};
        if (!g.enabled) return g;
        g.core = detail::EndAccess::usable(end_.get());
        if (sent_) {
            throw UsageError(std::string("csp::OutputGuard on '") + g.core->name +
                                  "': its move-only value was already sent");
        }
        if constexpr (std::is_copy_constructible_v<T>) {
            if (keep_value) {
                copy.emplace(value_);
                g.slot = std::addressof(*copy);
                return g;
            }
        }
        g.slot = std::addressof(value_);
        return g;
    }
    // fired_quietly: the guard fired (a moved-out value cannot be sent
    // again); fired also runs the action.
    void fired_quietly(bool kept_value) noexcept {
        if (!kept_value || !std::is_copy_constructible_v<T>) sent_ = true;
    }
    void fired(bool kept_value) {
        fired_quietly(kept_value);
        if (action_) action_();
    }

private:
    detail::EndRef<ChannelOut<T>> end_;
    T value_;
    std::function<void()> action_;
    bool sent_ = false;  // the value was moved out: the guard cannot fire again
};

// SkipGuard: always ready.
class SkipGuard : public detail::GuardBase<SkipGuard> {
public:
    using value_type = std::monostate;
    SkipGuard() = default;
    template <class F>
    explicit SkipGuard(F&& action) : action_(detail::nullary_action(std::forward<F>(action))) {}

    channels::Guard record() const noexcept { return {channels::Guard::Kind::Skip, enabled(), nullptr, nullptr, {}}; }
    void fired() {
        if (action_) action_();
    }

private:
    std::function<void()> action_;
};

// TimeoutGuard: ready once `duration` has passed since the choice started.
// It uses the runtime's timers (no thread per timeout) and never fires early.
class TimeoutGuard : public detail::GuardBase<TimeoutGuard> {
public:
    using value_type = std::monostate;
    template <class Rep, class Period>
    explicit TimeoutGuard(std::chrono::duration<Rep, Period> d)
        : duration_(std::chrono::ceil<std::chrono::nanoseconds>(d)) {}
    template <class Rep, class Period, class F>
    TimeoutGuard(std::chrono::duration<Rep, Period> d, F&& action)
        : duration_(std::chrono::ceil<std::chrono::nanoseconds>(d)),
          action_(detail::nullary_action(std::forward<F>(action))) {}

    channels::Guard record(std::chrono::steady_clock::time_point start) const noexcept {
        channels::Guard g{channels::Guard::Kind::Timeout, enabled(), nullptr, nullptr, {}};
        g.deadline = start + std::max(duration_, std::chrono::nanoseconds{0});
        return g;
    }
    void fired() {
        if (action_) action_();
    }

private:
    std::chrono::nanoseconds duration_;
    std::function<void()> action_;
};

namespace detail {

template <class G>
inline constexpr bool is_guard_v = false;
template <class T>
inline constexpr bool is_guard_v<InputGuard<T>> = true;
template <class T>
inline constexpr bool is_guard_v<OutputGuard<T>> = true;
template <>
inline constexpr bool is_guard_v<SkipGuard> = true;
template <>
inline constexpr bool is_guard_v<TimeoutGuard> = true;

template <class V>
inline constexpr bool is_guard_vector_v = false;
template <class G>
inline constexpr bool is_guard_vector_v<std::vector<G>> = is_guard_v<G>;

template <class G>
inline constexpr bool is_input_v = false;
template <class T>
inline constexpr bool is_input_v<InputGuard<T>> = true;
template <class G>
inline constexpr bool is_output_v = false;
template <class T>
inline constexpr bool is_output_v<OutputGuard<T>> = true;

// What a select returns for guard G: the value read for an input guard,
// std::monostate for every other guard.
template <class G>
using guard_result_t = std::conditional_t<is_input_v<G>, typename G::value_type, std::monostate>;

// ChoiceSlot: what one guard needs during one choice: storage for the value an
// input guard reads, the copy an output guard sends.
template <class G>
struct ChoiceSlot {};
template <class T>
struct ChoiceSlot<InputGuard<T>> {
    alignas(T) unsigned char bytes[sizeof(T)];
};
template <class T>
struct ChoiceSlot<OutputGuard<T>> {
    std::optional<T> copy;
};

template <class G>
channels::Guard record_of(G& g, ChoiceSlot<G>& slot, bool keep_value, std::chrono::steady_clock::time_point start) {
    if constexpr (is_input_v<G>) return g.record(slot.bytes);
    else if constexpr (is_output_v<G>) return g.record(slot.copy, keep_value);
    else if constexpr (std::is_same_v<G, TimeoutGuard>) return g.record(start);
    else return g.record();
}

// check_choice turns the engine's outcomes other than Done into exceptions.
[[noreturn]] void throw_choice(channels::Choice c, const channels::Guard* guards, std::size_t count);
[[noreturn]] void throw_empty_choice();
inline void check_choice(channels::Choice c, const channels::Guard* guards, std::size_t count) {
    if (c.outcome != channels::Outcome::Done) throw_choice(c, guards, count);
}

inline std::chrono::steady_clock::time_point choice_start(bool has_timeout) {
    return has_timeout ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
}

// GuardList, a fixed list of guards of any kinds, makes one choice over them;
// Alternation and the variadic select functions are built on it.
template <class... G>
class GuardList {
public:
    static constexpr std::size_t size = sizeof...(G);
    using Result = std::variant<guard_result_t<G>...>;
    static_assert(size > 0, "csp: a choice needs at least one guard");
    static_assert((is_guard_v<G> && ...),
                  "csp: a choice takes guards: InputGuard, OutputGuard, SkipGuard, TimeoutGuard");

    // choose makes one choice. With RunAction it runs the chosen guard's
    // action and returns its position; otherwise it returns the variant.
    // keep[i]: guard i keeps its output value (it may fire again).
    template <bool RunAction>
    static auto choose(std::tuple<G&...> guards, const bool* keep, channels::Order order) {
        return choose_impl<RunAction>(guards, keep, order, std::index_sequence_for<G...>{});
    }

private:
    template <bool RunAction, std::size_t... I>
    static auto choose_impl(std::tuple<G&...> guards, const bool* keep, channels::Order order,
                            std::index_sequence<I...>) {
        std::tuple<ChoiceSlot<G>...> slots;
        const auto start = choice_start((std::is_same_v<G, TimeoutGuard> || ...));
        channels::Guard records[size] = {
            record_of(std::get<I>(guards), std::get<I>(slots), keep[I], start)...};
        const channels::Choice c = channels::choose(records, size, order);
        check_choice(c, records, size);
        if constexpr (RunAction) {
            ((c.index == I ? fire(std::get<I>(guards), std::get<I>(slots), keep[I]) : void()), ...);
            return c.index;
        } else {
            std::optional<Result> result;
            ((c.index == I ? take<I>(std::get<I>(guards), std::get<I>(slots), keep[I], result) : void()), ...);
            return std::move(*result);
        }
    }

    template <class Guard>
    static void fire(Guard& g, ChoiceSlot<Guard>& slot, bool keep) {
        if constexpr (is_input_v<Guard>) {
            g.run_action(take_out<typename Guard::value_type>(slot.bytes));
        } else if constexpr (is_output_v<Guard>) {
            g.fired(keep);
        } else {
            g.fired();
        }
    }

    template <std::size_t I, class Guard>
    static void take(Guard& g, ChoiceSlot<Guard>& slot, bool keep, std::optional<Result>& result) {
        if constexpr (is_input_v<Guard>) {
            result.emplace(std::in_place_index<I>, take_out<typename Guard::value_type>(slot.bytes));
        } else {
            if constexpr (is_output_v<Guard>) g.fired_quietly(keep);
            result.emplace(std::in_place_index<I>);
        }
    }
};

// choose_among makes one choice over a runtime-sized vector of guards of one
// type. Input guards share one value storage: only one guard fires.
template <bool RunAction, class G>
auto choose_among(std::vector<G>& guards, bool keep, channels::Order order) {
    static_assert(is_guard_v<G>, "csp: a choice takes a std::vector of guards");
    using V = typename G::value_type;
    const std::size_t n = guards.size();
    // No guard at all: as if every guard had retired (a server alting over
    // a vector of its clients ends when none is left), said as such.
    if (n == 0) throw_empty_choice();
    channels::SmallArray<channels::Guard> records(n);
    ChoiceSlot<G> shared;
    std::vector<std::optional<V>> copies;  // output guards that keep their value
    if constexpr (is_output_v<G>) {
        if (keep) copies.resize(n);
    }
    const auto start = choice_start(std::is_same_v<G, TimeoutGuard>);
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (is_input_v<G>) {
            records[i] = guards[i].record(shared.bytes);
        } else if constexpr (is_output_v<G>) {
            std::optional<V> unused;
            records[i] = guards[i].record(keep ? copies[i] : unused, keep);
        } else {
            records[i] = record_of(guards[i], shared, keep, start);
        }
    }
    const channels::Choice c = channels::choose(records.data(), n, order);
    check_choice(c, records.data(), n);
    G& g = guards[c.index];
    if constexpr (RunAction) {
        if constexpr (is_input_v<G>) {
            g.run_action(take_out<V>(shared.bytes));
        } else if constexpr (is_output_v<G>) {
            g.fired(keep);
        } else {
            g.fired();
        }
        return c.index;
    } else {
        std::pair<std::size_t, std::optional<V>> result{c.index, std::nullopt};
        if constexpr (is_input_v<G>) {
            result.second.emplace(take_out<V>(shared.bytes));
        } else if constexpr (is_output_v<G>) {
            g.fired_quietly(keep);
        }
        return result;
    }
}

template <class... G>
auto select_guards(channels::Order order, G&&... guards) {
    // A guard passed as a temporary gives its output value away; one the
    // caller keeps (an lvalue) sends a copy.
    const bool keep[] = {!std::is_rvalue_reference_v<G&&>...};
    return GuardList<std::remove_cvref_t<G>...>::template choose<false>(
        std::tuple<std::remove_cvref_t<G>&...>(guards...), keep, order);
}

inline channels::Order priority() noexcept { return {channels::Order::Kind::Priority, 0}; }
inline channels::Order random_order() noexcept { return {channels::Order::Kind::Random, 0}; }

}  // namespace detail

// Alternation: a reusable choice over a fixed list of guards of any kinds.
// An output guard sends a copy of its value each time it fires (a move-only
// value can be sent once). The guards' channel ends must outlive it unless
// they were given as temporaries.
template <class... Guards>
class Alternation {
    using List = detail::GuardList<Guards...>;

public:
    explicit Alternation(Guards... guards) : guards_(std::move(guards)...) {}

    // execute chooses a ready guard (whichever is cheapest), communicates
    // and runs that guard's action; returns its position.
    std::size_t execute() { return run<true>(detail::priority()); }
    // pri_execute: the first ready guard in order.
    std::size_t pri_execute() { return run<true>(detail::priority()); }
    // fair_execute: round-robin, starting after the guard chosen last time,
    // so a guard that stays ready waits at most n-1 choices.
    std::size_t fair_execute() { return fair<true>(); }

    // The select forms choose and communicate like the execute forms but run
    // no action; they return what PriSelect returns.
    typename List::Result select() { return run<false>(detail::priority()); }
    typename List::Result pri_select() { return run<false>(detail::priority()); }
    typename List::Result fair_select() { return fair<false>(); }

    // guard<I>() is guard I, e.g. to change its pre-condition between
    // choices: alt.guard<0>().when(queue.size() < limit).
    template <std::size_t I>
    auto& guard() noexcept {
        return std::get<I>(guards_);
    }

private:
    template <bool RunAction>
    auto run(channels::Order order) {
        constexpr std::size_t n = sizeof...(Guards);
        bool keep[n];
        std::fill_n(keep, n, true);
        return std::apply(
            [&](Guards&... g) {
                return List::template choose<RunAction>(std::tuple<Guards&...>(g...), keep, order);
            },
            guards_);
    }
    template <bool RunAction>
    auto fair() {
        auto r = run<RunAction>({channels::Order::Kind::RoundRobin, next_});
        std::size_t chosen;
        if constexpr (RunAction) chosen = r;
        else chosen = r.index();
        next_ = (chosen + 1) % sizeof...(Guards);
        return r;
    }

    std::tuple<Guards...> guards_;
    std::size_t next_ = 0;
};

// Alternation over a runtime-sized vector of guards of one type; its select
// forms return the position chosen and, for input guards, the value read.
template <class G>
class Alternation<std::vector<G>> {
public:
    explicit Alternation(std::vector<G> guards) : guards_(std::move(guards)) {}

    std::size_t execute() { return detail::choose_among<true>(guards_, true, detail::priority()); }
    std::size_t pri_execute() { return detail::choose_among<true>(guards_, true, detail::priority()); }
    std::size_t fair_execute() { return fair<true>(); }
    auto select() { return detail::choose_among<false>(guards_, true, detail::priority()); }
    auto pri_select() { return detail::choose_among<false>(guards_, true, detail::priority()); }
    auto fair_select() { return fair<false>(); }

    // guards: the guards, e.g. to change pre-conditions between choices.
    std::vector<G>& guards() noexcept { return guards_; }

private:
    template <bool RunAction>
    auto fair() {
        const std::size_t n = guards_.size();
        auto r = detail::choose_among<RunAction>(guards_, true,
                                                 {channels::Order::Kind::RoundRobin, n ? next_ % n : 0});
        std::size_t chosen;
        if constexpr (RunAction) chosen = r;
        else chosen = r.first;
        next_ = chosen + 1;
        return r;
    }

    std::vector<G> guards_;
    std::size_t next_ = 0;
};

template <class... G>
Alternation(G...) -> Alternation<G...>;
template <class G>
Alternation(std::vector<G>) -> Alternation<std::vector<G>>;

// PriSelect chooses the first ready guard in argument order. The result is a
// std::variant with one alternative per guard, by position: an input guard's
// holds the value read, the others std::monostate. No action is run.
template <class... G>
    requires(sizeof...(G) > 0 && (detail::is_guard_v<std::remove_cvref_t<G>> && ...))
auto PriSelect(G&&... guards) {
    return detail::select_guards(detail::priority(), std::forward<G>(guards)...);
}

// AltSelect chooses whichever ready guard is cheapest to find.
template <class... G>
    requires(sizeof...(G) > 0 && (detail::is_guard_v<std::remove_cvref_t<G>> && ...))
auto AltSelect(G&&... guards) {
    return detail::select_guards(detail::priority(), std::forward<G>(guards)...);
}

// FairSelect chooses uniformly at random among the ready guards.
template <class... G>
    requires(sizeof...(G) > 0 && (detail::is_guard_v<std::remove_cvref_t<G>> && ...))
auto FairSelect(G&&... guards) {
    return detail::select_guards(detail::random_order(), std::forward<G>(guards)...);
}

// The same over a runtime-sized vector of guards of one type: returns the
// position chosen and, for an input guard, the value read. Guards in a vector
// the caller keeps (an lvalue) send copies of their output values.
template <class V>
    requires detail::is_guard_vector_v<std::remove_cvref_t<V>>
auto PriSelect(V&& guards) {
    return detail::choose_among<false>(guards, std::is_lvalue_reference_v<V>, detail::priority());
}
template <class V>
    requires detail::is_guard_vector_v<std::remove_cvref_t<V>>
auto AltSelect(V&& guards) {
    return detail::choose_among<false>(guards, std::is_lvalue_reference_v<V>, detail::priority());
}
template <class V>
    requires detail::is_guard_vector_v<std::remove_cvref_t<V>>
auto FairSelect(V&& guards) {
    return detail::choose_among<false>(guards, std::is_lvalue_reference_v<V>, detail::random_order());
}

}  // namespace csp
