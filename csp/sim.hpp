// sim.hpp: deterministic simulation. A body (a small network: processes,
// channels, choices) runs many times, each run on one worker with every
// scheduling decision (which process runs next; whether one that has just
// communicated goes on or is preempted), and every order in which a choice
// tries its guards, taken from a seeded generator; sleep and TimeoutGuard
// run on virtual time, which jumps to the next timer when every process
// waits. A run that fails
// (the body throws, a process fails, or the network deadlocks) stops the
// check with a csp::sim::Failure holding the seed and the schedule: its
// decisions, which replay gives back to run the same run again, event for
// event.
//
//   csp::sim::check_random([] {
//       csp::Channel<int> c;
//       csp::Parallel(producer(c.writer()), consumer(c.reader()));
//   }, {.iterations = 2000});      // CSP_SIM_SEED=... sets the first seed
//   csp::sim::replay(body, "schedule string from a failure");
//
// check_random and replay run from main (or another plain thread), with no
// other process running. In a simulation csp::multiprocess runs as a fiber
// (no fork), and so do processes placed on ranks (csp::on_rank,
// csp::spread: every one runs here, whatever its rank, with or without
// mpirun); csp::io, plain threads and other OS processes are outside the
// simulation and make runs differ.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace csp::sim {

struct Options {
    std::uint64_t iterations = 1000;     // runs, each with its own seed (seed, seed + 1, ...)
    std::optional<std::uint64_t> seed;   // the first seed; default: CSP_SIM_SEED, or random
};

// Failure: a simulated run failed. what(): the original message, the seed
// and the schedule string (replay's argument).
class Failure : public std::runtime_error {
public:
    Failure(const std::string& what, std::uint64_t seed, std::string schedule, std::exception_ptr original)
        : std::runtime_error(what), seed_(seed), schedule_(std::move(schedule)), original_(std::move(original)) {}
    std::uint64_t seed() const noexcept { return seed_; }
    const std::string& schedule() const noexcept { return schedule_; }
    // The exception the run ended with (a ProcessError, DeadlockError, ...).
    std::exception_ptr original() const noexcept { return original_; }

private:
    std::uint64_t seed_;
    std::string schedule_;
    std::exception_ptr original_;
};

// check_random: `body` run options.iterations times, until one fails
// (Failure). A csp::UsageError if called from inside a process or while
// other processes run.
void check_random(const std::function<void()>& body, Options options = {});

// replay: `body` run once with the decisions of `schedule` (from a
// Failure): a Failure again if it fails (the same one, for the same body).
// A csp::UsageError if the schedule is not one, or does not fit the body
// (it made other decisions than the schedule's: the body changed).
void replay(const std::function<void()>& body, std::string_view schedule);

}  // namespace csp::sim
