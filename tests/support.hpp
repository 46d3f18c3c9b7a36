// Shared helpers of the csp test suites: the placement a test executable runs
// its networks in, run_network() that runs a set of "process" bodies in that
// placement, and the counting value types that let tests assert exact counts.
//
// Catch2 2.x assertions are not thread-safe: process bodies never call CHECK
// or REQUIRE. They record what they saw (atomics, per-body vectors) and the
// test asserts on main after the network has ended.
#pragma once

#include <csp/csp.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

namespace csp_test {

using Clock = std::chrono::steady_clock;

// Where the bodies of a network run. The fiber worker count is not a
// placement of its own here: the runtime reads CSP_THREADS when it starts, so
// meson registers the same executable with CSP_THREADS=1 and CSP_THREADS=4.
enum class Placement {
    fibers,   // each body is a csp::process run by csp::Parallel
    threads,  // each body runs on its own plain std::thread
};

// Placement of this run: CSP_TEST_PLACEMENT=threads selects plain threads,
// anything else (or nothing) fibers.
Placement placement();
const char* placement_name();

// Body is one "process" of a network, written once for every placement. It
// owns the channel ends it captured; they are destroyed (and so leave their
// channel) as soon as the body ends, in every placement.
using Body = std::function<void()>;

// run_network runs every body concurrently in the current placement and
// returns when all have ended. As with csp::Parallel, a body that ends with
// ChannelPoisonException or ChannelRetireException has ended normally; any
// other exception is rethrown after every body has ended (as the
// csp::ProcessError of Parallel with fibers, as it was thrown with threads).
void run_network(std::vector<Body> bodies);

// A channel of capacity `buffer` (0: unbuffered) named `name`.
template <class T>
csp::Channel<T> make_channel(int buffer, const char* name) {
    if (buffer == 0) return csp::Channel<T>{name};
    return csp::Channel<T>{name, csp::buffer(buffer)};
}

// Tracked counts its live objects and its copies. A test notes both counts
// before a network and checks after it that every object made was destroyed
// (nothing leaked, nothing destroyed twice) and that no value was copied.
// No default constructor: API.md asks only that T be movable.
struct Tracked {
    static inline std::atomic<long> live{0};
    static inline std::atomic<long> copies{0};

    int value;

    explicit Tracked(int v) : value(v) { live.fetch_add(1); }
    Tracked(const Tracked& other) : value(other.value) {
        live.fetch_add(1);
        copies.fetch_add(1);
    }
    Tracked(Tracked&& other) noexcept : value(other.value) {
        other.value = -1;
        live.fetch_add(1);
    }
    Tracked& operator=(const Tracked& other) {
        value = other.value;
        copies.fetch_add(1);
        return *this;
    }
    Tracked& operator=(Tracked&& other) noexcept {
        value = other.value;
        other.value = -1;
        return *this;
    }
    ~Tracked() { live.fetch_sub(1); }
};

// Counts of Tracked at one moment, to compare with a later one.
struct TrackedCounts {
    long live = Tracked::live.load();
    long copies = Tracked::copies.load();
};

// How a body ended, recorded by the body for the test to check afterwards.
enum class Ending : int { running = 0, normally, retired, poisoned, failed };

// The std::exception_ptr a csp::ProcessError holds. API.md says it holds the
// original exception without naming the accessor: take original() or, for an
// error that is a std::nested_exception, nested_ptr(); nullptr when neither is
// there (the test then fails saying so).
template <class Error>
std::exception_ptr original_exception(const Error& error) {
    if constexpr (requires { { error.original() } -> std::convertible_to<std::exception_ptr>; }) {
        return error.original();
    } else if constexpr (std::is_base_of_v<std::nested_exception, Error>) {
        return error.nested_ptr();
    } else {
        return nullptr;
    }
}

// The message of the exception inside `pointer`, or "" when it is null or not
// a std::exception.
std::string message_of(std::exception_ptr pointer);

// deadlock_report(run): the report of the DeadlockError thrown by `run`,
// or "" when it threw none.
template <class Run>
std::string deadlock_report(Run&& run) {
    try {
        run();
    } catch (const csp::DeadlockError& error) {
        return error.what();
    }
    return "";
}

// repeat_within(max_rounds, budget, round): runs round(0), round(1), ...
// until max_rounds have run or the budget is spent (the first always runs),
// so stress scenarios stay bounded under --repeat and sanitizers. Returns
// the number of rounds run.
template <class Round>
int repeat_within(int max_rounds, Clock::duration budget, Round&& round) {
    const auto start = Clock::now();
    int rounds = 0;
    do {
        round(rounds);
        ++rounds;
    } while (rounds < max_rounds && Clock::now() - start < budget);
    return rounds;
}

}  // namespace csp_test
