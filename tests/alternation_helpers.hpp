// Helpers shared by the Alternation suites (alternation.cpp and
// alternation_stress.cpp): the three choice policies as one parameter, what a
// choice's variant holds, and how a choice made in a process of its own ended.
#pragma once

#include "support.hpp"

#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace csp_test {

// The three policies of a choice, so one scenario runs under each.
enum class Choice { arbitrary, priority, fair };

inline const char* name_of(Choice choice) {
    switch (choice) {
        case Choice::arbitrary: return "AltSelect";
        case Choice::priority: return "PriSelect";
        case Choice::fair: return "FairSelect";
    }
    return "?";
}

// select_by(choice, guards...) is AltSelect, PriSelect or FairSelect; the
// guards are forwarded once (only one branch runs).
template <class... G>
auto select_by(Choice choice, G&&... guards) {
    switch (choice) {
        case Choice::priority: return csp::PriSelect(std::forward<G>(guards)...);
        case Choice::fair: return csp::FairSelect(std::forward<G>(guards)...);
        default: return csp::AltSelect(std::forward<G>(guards)...);
    }
}

// execute_by(choice, alt) is alt.execute(), alt.pri_execute() or alt.fair_execute().
template <class Alt>
std::size_t execute_by(Choice choice, Alt& alt) {
    switch (choice) {
        case Choice::priority: return alt.pri_execute();
        case Choice::fair: return alt.fair_execute();
        default: return alt.execute();
    }
}

// held_value(r): the int a choice's variant holds (an int, any integral type
// or a Tracked), or -1 when the chosen alternative holds no value.
template <class Variant>
int held_value(const Variant& r) {
    return std::visit(
        [](const auto& v) -> int {
            using X = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<X, Tracked>) {
                return v.value;
            } else if constexpr (std::is_integral_v<X>) {
                return static_cast<int>(v);
            } else {
                return -1;
            }
        },
        r);
}

// ending_in_process(f): how f ended when run as a fiber process under
// csp::Parallel. A choice that would wait forever ends the Parallel in
// csp::DeadlockError (reported as `failed`) instead of hanging the suite.
template <class F>
Ending ending_in_process(F&& f) {
    Ending ending = Ending::running;
    auto body = csp::process([&] { ending = ending_of(f); });
    try {
        csp::Parallel(body());
    } catch (const csp::DeadlockError&) {
        return Ending::failed;
    }
    return ending;
}

// each_once(values, n): values holds 0..n-1, each exactly once.
inline bool each_once(std::vector<int> values, int n) {
    if (values.size() != static_cast<std::size_t>(n)) return false;
    std::vector<int> seen(n, 0);
    for (int v : values) {
        if (v < 0 || v >= n || seen[v]++ != 0) return false;
    }
    return true;
}

}  // namespace csp_test
