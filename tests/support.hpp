// Shared helpers of the csp test suites: the placement a test executable runs
// its networks in, run_network() that runs a set of "process" bodies in that
// placement, the counting value types that let tests assert exact counts, and
// the scale of counts in sanitizer builds.
//
// Catch2 2.x assertions are not thread-safe, and a body may run in a forked
// child whose memory is a copy: process bodies never call CHECK or REQUIRE.
// They report what they saw (a Seen, see Body) and the test asserts on main
// after the network has ended.
#pragma once

#include <csp/csp.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

namespace csp_test {

using Clock = std::chrono::steady_clock;

// kScale: how many times smaller the largest counts of a scenario are in a
// sanitizer build (n / kScale, see scaled()). ASan runs 2-5x slower; TSan
// 5-20x and keeps about 0.5 MB of state of its own per fiber, so 100 000
// fibers alive at once would need 50 GB. kScale is 1 exactly when no
// sanitizer is built in (so `kScale > 1` also says "not glibc's allocator").
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSP_TEST_TSAN 1
#elif __has_feature(address_sanitizer)
#define CSP_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(CSP_TEST_TSAN)
inline constexpr int kScale = 20;
#elif defined(__SANITIZE_ADDRESS__) || defined(CSP_TEST_ASAN)
inline constexpr int kScale = 4;
#else
inline constexpr int kScale = 1;
#endif
#undef CSP_TEST_TSAN
#undef CSP_TEST_ASAN

// scaled(n): n in this build, at least 1.
constexpr int scaled(int n) { return std::max(1, n / kScale); }

// Where the bodies of a network run. The fiber worker count is not a
// placement of its own here: the runtime reads CSP_THREADS when it starts, so
// meson registers the same executable with CSP_THREADS=1 and CSP_THREADS=4.
enum class Placement {
    fibers,        // each body is a csp::process run by csp::Parallel
    threads,       // each body runs on its own plain std::thread
    guests,        // every body a guest of the calling thread (runtime::GuestHost,
                   // as Python's green processes are), on a stack of its own
    os_processes,  // each body is a csp::multiprocess: a forked child of its own
    mixed,         // fiber and child by turns (a child first), so channels
                   // have partners on both sides of the OS-process boundary
    ranks,         // body i on MPI rank i % ranks (csp::on_rank): the MPI
                   // conformance executable (mpi_conformance.cpp) sets it
};

// env_int: environment variable `name` as a number (a test's round count,
// say), or `fallback` when it is not set.
inline int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : fallback;
}

// sim_trace_of: the file of a failing simulated run's trace, as its
// failure's message names it ("its trace: PATH ..."), or "" (forget_sim_trace
// removes it: a test that provokes failures leaves no files behind).
inline std::string sim_trace_of(const std::string& what) {
    const std::string says = "its trace: ";
    const auto at = what.find(says);
    if (at == std::string::npos) return {};
    const auto from = at + says.size();
    return what.substr(from, what.find_first_of(" \n", from) - from);
}
inline void forget_sim_trace(const std::string& what) {
    const std::string path = sim_trace_of(what);
    if (!path.empty() && path.find("csp-sim-") != std::string::npos) std::remove(path.c_str());
}

// Placement of this run: CSP_TEST_PLACEMENT=threads, os_processes or mixed
// selects that placement; anything else (or nothing) fibers; ranks when a
// rank placer is set.
Placement placement();
const char* placement_name();

struct Seen;

// RankPlacer: how the ranks placement places body i (the process p that runs
// it): csp::on_rank(i % ranks, p), given by the MPI conformance executable,
// which links libcsp-mpi (this library does not). Set before any test runs.
using RankPlacer = csp::Process<Seen> (*)(std::size_t i, csp::Process<Seen> p);
void set_rank_placer(RankPlacer placer, int rank, int ranks);
// this_rank / rank_count: of the ranks placement (0 and 1 otherwise).
int this_rank();
int rank_count();

// in_one_os_process: every body runs in this OS process (fibers, threads),
// so bodies share its memory and Tracked's counters see every value.
bool in_one_os_process();

// in_child(i): the i-th body of a network runs in a child OS process.
bool in_child(std::size_t i);

// How a body ended, as a test checks it afterwards.
enum class Ending : int { running = 0, normally, retired, poisoned, failed };

inline std::ostream& operator<<(std::ostream& os, Ending ending) {
    switch (ending) {
        case Ending::running: return os << "still running";
        case Ending::normally: return os << "ended normally";
        case Ending::retired: return os << "ChannelRetireException";
        case Ending::poisoned: return os << "ChannelPoisonException";
        case Ending::failed: return os << "failed (another exception, or DeadlockError)";
    }
    return os << "?";
}

// ending_of(f): how f ended, where it was called (main, a fiber, a child);
// exceptions other than retire and poison count as `failed`.
template <class F>
Ending ending_of(F&& f) {
    try {
        f();
        return Ending::normally;
    } catch (const csp::ChannelRetireException&) {
        return Ending::retired;
    } catch (const csp::ChannelPoisonException&) {
        return Ending::poisoned;
    } catch (...) {
        return Ending::failed;
    }
}

// Seen: what one body saw, handed back to the test by run_network. It must
// cross OS processes (a child's result comes back serialized), so it holds
// plain numbers: ids of values, counts, times.
struct Seen {
    Ending ending = Ending::running;
    std::vector<int> values;  // ids of the values the body read, in order
    int count = 0;            // operations that completed (say, writes)
    // Clock ticks at the moment the body chose to note. steady_clock is the
    // system's monotonic clock, so moments of different OS processes compare.
    Clock::rep noted_at = 0;
    int os_process = 0;  // the pid of the OS process the body ran in

    void note_time() { noted_at = Clock::now().time_since_epoch().count(); }

    template <class Archive>
    void serialize(Archive& archive) {
        archive(ending, values, count, noted_at, os_process);
    }
};

// Body is one "process" of a network, written once for every placement. It
// owns the channel ends it captured (by value); they are destroyed, and so
// leave their channel, as soon as the body ends, in every placement.
//
// A body is a callable `void(Seen&)`: it records into the Seen it is handed,
// which run_network returns. It does not return a Seen of its own so that
// one ending with an exception still reports what it saw before: a body that
// ends with ChannelRetireException or ChannelPoisonException has ended
// normally, as with csp::Parallel, and its Seen says retired or poisoned
// (normally when it returned). Any other exception fails the network.
//
// A callable `void()` is a body that records into the test's variables by
// reference instead. It can run only in one OS process (fibers, threads):
// run_network refuses it where bodies run in children, whose writes into
// the test's memory would be lost.
class Body {
public:
    template <class F>
        requires(!std::same_as<F, Body> && std::invocable<F&, Seen&>)
    Body(F f) : run_(std::move(f)) {}  // NOLINT(google-explicit-constructor): a lambda is a Body
    template <class F>
        requires(!std::same_as<F, Body> && std::invocable<F&> && !std::invocable<F&, Seen&>)
    Body(F f)  // NOLINT(google-explicit-constructor)
        : run_([f = std::move(f)](Seen&) mutable { f(); }), by_reference_(true) {}

    // run runs the body once and returns its Seen, with how it ended.
    Seen run() {
        Seen seen;
        seen.os_process = static_cast<int>(getpid());
        try {
            run_(seen);
            seen.ending = Ending::normally;
        } catch (const csp::ChannelRetireException&) {
            seen.ending = Ending::retired;
        } catch (const csp::ChannelPoisonException&) {
            seen.ending = Ending::poisoned;
        }
        return seen;
    }

    bool records_by_reference() const noexcept { return by_reference_; }
    // release: let go of the callable and so of the ends it captured.
    void release() noexcept { run_ = nullptr; }

private:
    std::function<void(Seen&)> run_;
    bool by_reference_ = false;
};

// run_network runs every body concurrently in the current placement and
// returns when all have ended: what each saw, in the order of `bodies`. A
// body that failed with an ordinary exception is rethrown after every body
// has ended (as the csp::ProcessError of Parallel with fibers and children,
// as it was thrown with threads). Bodies that record by reference throw
// std::logic_error at once in a placement with children.
std::vector<Seen> run_network(std::vector<Body> bodies);

// The OS processes this process has forked and not yet reaped: "" when
// every child has been reaped; otherwise their pids (from /proc, zombies
// included), and a note when waitpid finds a child that /proc did not show.
// A test checks it after every network that may have forked.
std::string unreaped_children();

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

// Values the counting scenarios write, made from an id: make_value<T>(id),
// and id_of(v) gives the id back.
//
// Tracked cannot cross OS processes, and is kept that way on purpose: it is
// not trivially copyable, and giving it a cereal serialize would not do (a
// serialized type must be default-constructible, and Tracked has no default
// constructor to prove that channels need only movable values). Its counters
// could not see a child's constructions and destructions either. So a
// counting scenario (conformance.cpp's with_each_value_type) runs with
// Tracked where its bodies share this OS process (in_one_os_process()),
// checking that nothing is left alive and nothing was copied, and with int
// and std::string across OS processes (memcpy and the serializer; the
// strings vary in length and some hold zero bytes), checking every value's
// content.
template <class T>
T make_value(int id);
template <>
inline Tracked make_value<Tracked>(int id) {
    return Tracked(id);
}
template <>
inline int make_value<int>(int id) {
    return id;
}
template <>
std::string make_value<std::string>(int id);

inline int id_of(const Tracked& value) { return value.value; }
inline int id_of(int value) { return value; }
// id_of(s): the id s was made from, or -1 when s is not exactly
// make_value<std::string>(id) for any id (a damaged value).
int id_of(const std::string& s);

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
