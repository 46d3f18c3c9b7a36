// detail/choice.hpp: one choice over typed guards, made by the engine.
//
// A choice turns each guard into the engine's untyped record
// (channels::Guard), lets channels::choose pick and complete exactly one,
// then hands the outcome back to that guard: the value an input guard read,
// the action to run, the output value spent. GuardAccess is the only caller
// of the guards' private protocol (record, fired, ...); GuardList makes a
// choice over a fixed list of guards of any kinds, choose_among over a
// std::vector of one kind. Invariants:
//   - Only the chosen guard's slot holds a value afterwards, and it is taken
//     out exactly once (take_out), also when the action throws.
//   - An output guard that keeps its value (it may fire again) sends a copy
//     made for this choice; otherwise its own value is moved out, once.
#pragma once

#include "channels/alternation.hpp"
#include "csp/detail/ends.hpp"
#include "csp/detail/storage.hpp"
#include "csp/errors.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp {

template <class T>
class InputGuard;
template <class T>
class OutputGuard;
template <class T>
class ExtendedInputGuard;
class SkipGuard;
class BarrierGuard;
class TimeoutGuard;

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

template <class G>
inline constexpr bool is_guard_v = false;
template <class T>
inline constexpr bool is_guard_v<InputGuard<T>> = true;
template <class T>
inline constexpr bool is_guard_v<OutputGuard<T>> = true;
template <class T>
inline constexpr bool is_guard_v<ExtendedInputGuard<T>> = true;
template <>
inline constexpr bool is_guard_v<SkipGuard> = true;
template <>
inline constexpr bool is_guard_v<BarrierGuard> = true;
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
inline constexpr bool is_extended_v = false;
template <class T>
inline constexpr bool is_extended_v<ExtendedInputGuard<T>> = true;
template <class G>
inline constexpr bool is_output_v = false;
template <class T>
inline constexpr bool is_output_v<OutputGuard<T>> = true;

template <class G>
inline constexpr bool is_timeout_v = std::is_same_v<G, TimeoutGuard>;

// guard_value_t: the type a guard reads or writes (std::monostate for skip
// and timeout guards).
template <class G>
using guard_value_t = typename G::value_type;

// What a select returns for guard G: the value read for an input guard,
// std::monostate for every other guard.
// (An extended input guard's: the value, after its action ran on it.)
template <class G>
using guard_result_t = std::conditional_t<is_input_v<G> || is_extended_v<G>, guard_value_t<G>, std::monostate>;

// ChoiceSlot: what one guard needs during one choice: storage for the value an
// input guard reads (a wire_t<T>), the copy an output guard sends; for a
// boxed T (detail/ends.hpp), the box an output guard sends and the pointer
// the channel layer moves (null once handed on: then the box is no longer
// this slot's to free).
template <class G>
struct ChoiceSlot {};
template <class T>
struct ChoiceSlot<InputGuard<T>> {
    alignas(wire_t<T>) unsigned char bytes[sizeof(wire_t<T>)];
};
template <class T>
struct ChoiceSlot<ExtendedInputGuard<T>> {
    alignas(wire_t<T>) unsigned char bytes[sizeof(wire_t<T>)];
    channels::ExtendedSlot ext{bytes, {}};
    channels::ChannelCore* core = nullptr;
};
template <class T>
struct ChoiceSlot<OutputGuard<T>> {
    std::optional<T> copy;
    std::unique_ptr<T> box;            // a copy to send (boxed)
    std::unique_ptr<T>* owner = nullptr;  // or the guard's own box, sent itself
    T* wire = nullptr;
    ChoiceSlot() = default;
    ChoiceSlot(ChoiceSlot&&) noexcept = default;  // (only while empty: a vector of them is sized once)
    ~ChoiceSlot() {
        if (wire) return;  // not handed on (not chosen, or packed for another OS process)
        if (owner) (void)owner->release();
        else (void)box.release();
    }
};

using Clock = std::chrono::steady_clock;

// GuardAccess: the engine's side of a guard, for this file only.
struct GuardAccess {
    // record: guard g as the engine's record for one choice started at
    // `start`, using `slot` for its value.
    template <class G>
    static channels::Guard record(G& g, ChoiceSlot<G>& slot, bool keep, Clock::time_point start) {
        if constexpr (is_input_v<G>) return g.record(slot.bytes);
        else if constexpr (is_extended_v<G>) return g.record(slot);
        else if constexpr (is_output_v<G>) return g.record(slot, keep);
        else if constexpr (is_timeout_v<G>) return g.record(start);
        else return g.record();
    }
    // fire: g was chosen; run its action (with the value read).
    template <class G>
    static void fire(G& g, ChoiceSlot<G>& slot, bool keep) {
        if constexpr (is_input_v<G>) g.run_action(take_value<guard_value_t<G>>(slot.bytes));
        else if constexpr (is_extended_v<G>) g.fired(slot);
        else if constexpr (is_output_v<G>) g.fired(keep);
        else g.fired();
    }
    // take: g was chosen; what a select returns for it (no action runs).
    template <class G>
    static guard_result_t<G> take(G& g, ChoiceSlot<G>& slot, bool keep) {
        if constexpr (is_input_v<G>) {
            return take_value<guard_value_t<G>>(slot.bytes);
        } else if constexpr (is_extended_v<G>) {
            return g.fired_taking(slot);
        } else {
            if constexpr (is_output_v<G>) g.fired_quietly(keep);
            return {};
        }
    }
};

// check_choice turns the engine's outcomes other than Done into exceptions.
[[noreturn]] void throw_choice(channels::Choice c, const channels::Guard* guards, std::size_t count);
[[noreturn]] void throw_empty_choice();
inline void check_choice(channels::Choice c, const channels::Guard* guards, std::size_t count) {
    if (c.outcome != channels::Outcome::Done) throw_choice(c, guards, count);
}

inline Clock::time_point choice_start(bool has_timeout) {
    return has_timeout ? runtime::now() : Clock::time_point{};  // (virtual in a simulation)
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
                  "csp: a choice takes guards: InputGuard, OutputGuard, ExtendedInputGuard, BarrierGuard, SkipGuard, "
                  "TimeoutGuard");

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
        const auto start = choice_start((is_timeout_v<G> || ...));
        channels::Guard records[size] = {
            GuardAccess::record(std::get<I>(guards), std::get<I>(slots), keep[I], start)...};
        const channels::Choice c = channels::choose(records, size, order);
        check_choice(c, records, size);
        if constexpr (RunAction) {
            ((c.index == I ? GuardAccess::fire(std::get<I>(guards), std::get<I>(slots), keep[I]) : void()), ...);
            return c.index;
        } else {
            std::optional<Result> result;
            ((c.index == I ? void(result.emplace(std::in_place_index<I>,
                                                 GuardAccess::take(std::get<I>(guards), std::get<I>(slots), keep[I])))
                           : void()),
             ...);
            return std::move(*result);
        }
    }
};

// choose_among makes one choice over a runtime-sized vector of guards of one
// type. Input guards share one value storage (only one guard fires); output
// guards that keep their values, and extended input guards, have one each.
template <bool RunAction, class G>
auto choose_among(std::vector<G>& guards, bool keep, channels::Order order) {
    static_assert(is_guard_v<G>, "csp: a choice takes a std::vector of guards");
    const std::size_t n = guards.size();
    // No guard at all: as if every guard had retired (a server alting over
    // a vector of its clients ends when none is left), said as such.
    if (n == 0) throw_empty_choice();
    ChoiceSlot<G> shared;
    std::vector<ChoiceSlot<G>> copies;
    // (Output guards of a boxed type always have one each: each holds a box.)
    constexpr bool output = is_output_v<G>;
    bool copy_each = false;
    if constexpr (output) copy_each = keep || boxed_v<guard_value_t<G>>;
    // (Extended input guards too: the slot names the guard's channel and
    // what its read holds, until the action has run.)
    if constexpr (is_extended_v<G>) copy_each = true;
    if (copy_each) copies.resize(n);
    const auto slot = [&](std::size_t i) -> ChoiceSlot<G>& { return copy_each ? copies[i] : shared; };
    channels::SmallArray<channels::Guard> records(n);
    const auto start = choice_start(is_timeout_v<G>);
    for (std::size_t i = 0; i < n; ++i) records[i] = GuardAccess::record(guards[i], slot(i), keep, start);
    const channels::Choice c = channels::choose(records.data(), n, order);
    check_choice(c, records.data(), n);
    G& g = guards[c.index];
    if constexpr (RunAction) {
        GuardAccess::fire(g, slot(c.index), keep);
        return c.index;
    } else {
        // (The position and, for an input guard, the value read.)
        std::pair<std::size_t, std::optional<guard_value_t<G>>> result{c.index, std::nullopt};
        if constexpr (is_input_v<G> || is_extended_v<G>) result.second.emplace(GuardAccess::take(g, slot(c.index), keep));
        else GuardAccess::take(g, slot(c.index), keep);
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
// arbitrary: the first ready guard in order, as cheapest; in a simulation
// (csp/sim.hpp) a random order, so that every ready guard may be chosen.
inline channels::Order arbitrary() noexcept { return runtime::simulating() ? random_order() : priority(); }
inline channels::Order round_robin(std::size_t next) noexcept { return {channels::Order::Kind::RoundRobin, next}; }

}  // namespace detail

}  // namespace csp
