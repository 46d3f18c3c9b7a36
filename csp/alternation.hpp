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
// the choice. How a choice is made over typed guards: csp/detail/choice.hpp;
// the engine: channels/alternation.hpp.
#pragma once

#include "csp/channel.hpp"
#include "csp/detail/choice.hpp"
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

private:
    friend struct detail::GuardAccess;

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

// ExtendedInputGuard: an input guard whose read is an extended rendezvous
// (ChannelIn::extended_read): when it fires, its action runs on the value
// (as const T&) and only then does the writer's write complete. If the
// action throws, the channel is poisoned and the exception goes on. The
// select forms run the action too (it is part of the communication) and
// return the value afterwards.
template <class T>
class ExtendedInputGuard : public detail::GuardBase<ExtendedInputGuard<T>> {
public:
    using value_type = T;

    template <class F>
    ExtendedInputGuard(ChannelIn<T>& in, F&& action) : end_(in), action_(make_action(std::forward<F>(action))) {}
    template <class F>
    ExtendedInputGuard(ChannelIn<T>&& in, F&& action)
        : end_(std::move(in)), action_(make_action(std::forward<F>(action))) {}
    template <class... A>
    ExtendedInputGuard(const Channel<T>&, A&&...) : end_(ChannelIn<T>{}) {
        static_assert(sizeof...(A) < 0,
                      "csp::ExtendedInputGuard takes a channel end: pass ch.reader(), not the Channel");
    }

private:
    friend struct detail::GuardAccess;

    channels::Guard record(detail::ChoiceSlot<ExtendedInputGuard>& slot) {
        channels::Guard g{channels::Guard::Kind::ExtendedInput, this->enabled(), nullptr, nullptr, {}};
        if (g.enabled) {
            g.core = detail::EndAccess::usable(end_.get());
        }
        slot.ext = {slot.bytes, {}};
        slot.core = g.core;
        g.slot = &slot.ext;
        return g;
    }
    void fired(detail::ChoiceSlot<ExtendedInputGuard>& slot) {
        detail::run_extended<T>(slot.core, &slot.ext.held, slot.bytes, action_, [](T&) {});
    }
    T fired_taking(detail::ChoiceSlot<ExtendedInputGuard>& slot) {
        std::optional<T> out;
        detail::run_extended<T>(slot.core, &slot.ext.held, slot.bytes, action_,
                                [&](T& v) { out.emplace(std::move(v)); });
        return std::move(*out);
    }

    template <class F>
    static std::function<void(const T&)> make_action(F&& f) {
        if constexpr (std::is_invocable_v<F&, const T&>) {
            return [g = std::forward<F>(f)](const T& v) mutable { (void)g(v); };
        } else {
            static_assert(std::is_invocable_v<F&>,
                          "csp::ExtendedInputGuard: the action must be callable with the value read (as const T&), "
                          "or with no arguments");
            return [g = std::forward<F>(f)](const T&) mutable { (void)g(); };
        }
    }

    detail::EndRef<ChannelIn<T>> end_;
    std::function<void(const T&)> action_;
};

// OutputGuard: ready when its channel can take `value` now (or is poisoned).
template <class T>
class OutputGuard : public detail::GuardBase<OutputGuard<T>> {
public:
    using value_type = T;

    OutputGuard(ChannelOut<T>& out, std::type_identity_t<T> value) : end_(out), value_(held(std::move(value))) {}
    template <class... A>
    OutputGuard(const Channel<T>&, A&&...) : end_(ChannelOut<T>{}) {
        static_assert(sizeof...(A) < 0, "csp::OutputGuard takes a channel end: pass ch.writer(), not the Channel");
    }
    OutputGuard(ChannelOut<T>&& out, std::type_identity_t<T> value)
        : end_(std::move(out)), value_(held(std::move(value))) {}
    template <class F>
    OutputGuard(ChannelOut<T>& out, std::type_identity_t<T> value, F&& action)
        : end_(out), value_(held(std::move(value))), action_(detail::nullary_action(std::forward<F>(action))) {}
    template <class F>
    OutputGuard(ChannelOut<T>&& out, std::type_identity_t<T> value, F&& action)
        : end_(std::move(out)), value_(held(std::move(value))), action_(detail::nullary_action(std::forward<F>(action))) {}

private:
    friend struct detail::GuardAccess;

    // The engine's record of this guard. The slot holds a copy of the value
    // to send when the guard must keep its own (it may fire again);
    // otherwise the guard's value itself is moved out when it fires. A boxed
    // T (detail/ends.hpp) goes in a box made now: a copy or move that throws
    // does so before the choice communicates.
    channels::Guard record(detail::ChoiceSlot<OutputGuard>& slot, bool keep_value) {
        channels::Guard g{channels::Guard::Kind::Output, this->enabled(), nullptr, nullptr, {}};
        if (!g.enabled) return g;
        g.core = detail::EndAccess::usable(end_.get());
        if (sent_) {
            throw UsageError(std::string("csp::OutputGuard on '") + g.core->name +
                                  "': its move-only value was already sent");
        }
        const bool copy = std::is_copy_constructible_v<T> && keep_value;
        if constexpr (detail::boxed_v<T>) {
            if constexpr (std::is_copy_constructible_v<T>) {
                if (copy) {
                    slot.box = std::make_unique<T>(*value_);
                    slot.wire = slot.box.get();
                }
            }
            if (!copy) {  // the guard's own box goes; handed on, it is no longer the guard's
                slot.owner = &value_;
                slot.wire = value_.get();
            }
            g.slot = &slot.wire;
            return g;
        } else {
            if constexpr (std::is_copy_constructible_v<T>) {
                if (copy) {
                    slot.copy.emplace(value_);
                    g.slot = std::addressof(*slot.copy);
                    return g;
                }
            }
            g.slot = std::addressof(value_);
            return g;
        }
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

    detail::EndRef<ChannelOut<T>> end_;
    // A boxed T (detail/ends.hpp) is held in its box from the start: the
    // move into it happens here, where a throw is the caller's.
    using Held = std::conditional_t<detail::boxed_v<T>, std::unique_ptr<T>, T>;
    static Held held(T&& value) {
        if constexpr (detail::boxed_v<T>) return std::make_unique<T>(std::move(value));
        else return std::move(value);
    }
    Held value_;
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

private:
    friend struct detail::GuardAccess;

    channels::Guard record() const noexcept { return {channels::Guard::Kind::Skip, enabled(), nullptr, nullptr, {}}; }
    void fired() {
        if (action_) action_();
    }

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

private:
    friend struct detail::GuardAccess;

    channels::Guard record(std::chrono::steady_clock::time_point start) const noexcept {
        channels::Guard g{channels::Guard::Kind::Timeout, enabled(), nullptr, nullptr, {}};
        g.deadline = start + std::max(duration_, std::chrono::nanoseconds{0});
        return g;
    }
    void fired() {
        if (action_) action_();
    }

    std::chrono::nanoseconds duration_;
    std::function<void()> action_;
};

// Alternation: a reusable choice over a fixed list of guards of any kinds.
// An output guard sends a copy of its value each time it fires (a move-only
// value can be sent once). The guards' channel ends must outlive it unless
// they were given as temporaries.
template <class... Guards>
class Alternation {
    using List = detail::GuardList<Guards...>;

public:
    explicit Alternation(Guards... guards) : guards_(std::move(guards)...) {}

    // pri_execute chooses the first ready guard in order, communicates and
    // runs that guard's action; returns its position.
    std::size_t pri_execute() { return run<true>(detail::priority()); }
    // execute: whichever ready guard is cheapest to find, which is the
    // first one in order (the engine tries guards in order); in a
    // simulation any ready one.
    std::size_t execute() { return run<true>(detail::arbitrary()); }
    // fair_execute: round-robin, starting after the guard chosen last time,
    // so a guard that stays ready waits at most n-1 choices.
    std::size_t fair_execute() { return fair<true>(); }

    // The select forms choose and communicate like the execute forms but run
    // no action; they return what PriSelect returns.
    typename List::Result pri_select() { return run<false>(detail::priority()); }
    typename List::Result select() { return run<false>(detail::arbitrary()); }
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
        auto r = run<RunAction>(detail::round_robin(next_));
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

    std::size_t pri_execute() { return detail::choose_among<true>(guards_, true, detail::priority()); }
    std::size_t execute() { return detail::choose_among<true>(guards_, true, detail::arbitrary()); }
    std::size_t fair_execute() { return fair<true>(); }
    auto pri_select() { return detail::choose_among<false>(guards_, true, detail::priority()); }
    auto select() { return detail::choose_among<false>(guards_, true, detail::arbitrary()); }
    auto fair_select() { return fair<false>(); }

    // guards: the guards, e.g. to change pre-conditions between choices.
    std::vector<G>& guards() noexcept { return guards_; }

private:
    template <bool RunAction>
    auto fair() {
        const std::size_t n = guards_.size();
        auto r = detail::choose_among<RunAction>(guards_, true, detail::round_robin(n ? next_ % n : 0));
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

// AltSelect chooses whichever ready guard is cheapest to find: the first
// in order, as PriSelect does (the engine tries guards in order); in a
// simulation any ready guard, as a decision (csp/sim.hpp).
template <class... G>
    requires(sizeof...(G) > 0 && (detail::is_guard_v<std::remove_cvref_t<G>> && ...))
auto AltSelect(G&&... guards) {
    return detail::select_guards(detail::arbitrary(), std::forward<G>(guards)...);
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
    return detail::choose_among<false>(guards, std::is_lvalue_reference_v<V>, detail::arbitrary());
}
template <class V>
    requires detail::is_guard_vector_v<std::remove_cvref_t<V>>
auto FairSelect(V&& guards) {
    return detail::choose_among<false>(guards, std::is_lvalue_reference_v<V>, detail::random_order());
}

}  // namespace csp
