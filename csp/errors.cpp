// errors.cpp: the exceptions of csp, and the outcomes of the layers below
// (channel operations, choices) turned into them.
#include "csp/errors.hpp"

#include "channels/alternation.hpp"
#include "channels/barrier.hpp"

#include "csp/detail/unwinding.hpp"
#include "csp/serialize.hpp"
#include "runtime/runtime.hpp"

#include <cstring>
#include <exception>
#include <string>

namespace csp {

namespace {
std::string describe(const char* what, const std::string& channel) {
    return channel.empty() ? std::string(what) : std::string(what) + ": '" + channel + "'";
}

// (The retire mark: see csp/detail/unwinding.hpp.)
runtime::Parker* parker_of(const void* process) noexcept {
    return static_cast<runtime::Parker*>(const_cast<void*>(process));
}
}  // namespace

ChannelPoisonException::ChannelPoisonException(std::string channel)
    : channel_(std::move(channel)), message_(describe("channel poisoned", channel_)) {}

ChannelRetireException::ChannelRetireException(std::string channel)
    : channel_(std::move(channel)),
      message_(describe("channel retired", channel_)),
      process_(runtime::current()) {
    detail::mark_retire_in_flight(parker_of(process_));
}

ChannelRetireException::ChannelRetireException(std::string channel, std::string message)
    : channel_(std::move(channel)), message_(std::move(message)), process_(runtime::current()) {
    detail::mark_retire_in_flight(parker_of(process_));
}

ChannelRetireException::ChannelRetireException(const ChannelRetireException& other)
    : std::exception(other),
      channel_(other.channel_),
      message_(other.message_),
      process_(runtime::current()) {
    detail::mark_retire_in_flight(parker_of(process_));
}

ChannelRetireException::~ChannelRetireException() {
    // Only in the process that threw it: elsewhere process_ may be gone.
    if (runtime::current() == process_) detail::clear_retire_mark(parker_of(process_));
}

namespace {
std::string describe_death(int pid, int signal, int status) {
    if (signal != 0) {
        const char* name = strsignal(signal);
        return "OS process " + std::to_string(pid) + " was killed by signal " + std::to_string(signal) +
               " (" + (name ? name : "unknown") + ")";
    }
    return "OS process " + std::to_string(pid) + " exited with status " + std::to_string(status);
}
}  // namespace

OSProcessError::OSProcessError(int pid, int signal, int exit_status)
    : std::runtime_error(describe_death(pid, signal, exit_status)),
      pid_(pid), signal_(signal), status_(exit_status) {}

ProcessError::ProcessError(std::string process, std::exception_ptr original,
                           const std::string& what)
    : std::runtime_error("process '" + process + "' failed: " + what),
      process_(std::move(process)),
      original_(std::move(original)) {}

namespace detail {

namespace {
// throw_unpackable: a write (or an output guard) whose value could not be
// packed for another OS process: nothing was sent, and the writer gets the
// exception its serialization threw.
[[noreturn]] void throw_unpackable(const channels::ChannelCore* c) {
    if (std::exception_ptr e = take_pack_failure()) std::rethrow_exception(e);
    throw ChannelEndError(std::string("csp: a value for channel '") + c->name +
                          "' could not be packed for another OS process (its serialization failed, or no "
                          "memory was left); nothing was sent");
}
}  // namespace

void throw_outcome(channels::Outcome o, const channels::ChannelCore* c) {
    switch (o) {
        case channels::Outcome::Poisoned: throw ChannelPoisonException(c->name);
        case channels::Outcome::Retired: throw ChannelRetireException(c->name);
        case channels::Outcome::Deadlocked: throw DeadlockError(runtime::deadlock_report());
        case channels::Outcome::Unpackable: throw_unpackable(c);
        case channels::Outcome::Misused:
            throw ChannelEndError(std::string("csp: channel '") + c->name +
                                  "' is used from an OS process it was not handed to (through a reference "
                                  "or a global); pass its ends to the csp::multiprocess as arguments, or "
                                  "capture them by value. The channel is poisoned.");
        case channels::Outcome::Unsupported:
            throw UsageError(std::string("csp: channel '") + c->name +
                             "' is shared by MPI ranks and is used from a csp::multiprocess child, which cannot "
                             "reach the other ranks; only the processes of a rank's own OS process (fibers and "
                             "threads) can use it, so far");
        case channels::Outcome::Done: break;
    }
    throw std::logic_error("csp: unexpected channel outcome");
}

void throw_choice(channels::Choice c, const channels::Guard* guards, std::size_t count) {
    switch (c.outcome) {
        case channels::Outcome::Poisoned: {
            const channels::Guard& g = guards[c.index];
            if (g.kind == channels::Guard::Kind::Barrier) {
                throw ChannelPoisonException(static_cast<const channels::BarrierCore*>(g.slot)->name);
            }
            throw ChannelPoisonException(g.core->name);
        }
        // The choice has enabled channel guards and every one is retired: it
        // can never communicate (a skip or timeout it has would only spin).
        case channels::Outcome::Retired: {
            std::string names;
            for (std::size_t i = 0; i < count; ++i) {
                const channels::Guard& g = guards[i];
                const bool on_channel = g.kind == channels::Guard::Kind::Input || g.kind == channels::Guard::Kind::Output ||
                                        g.kind == channels::Guard::Kind::ExtendedInput;
                if (!on_channel || !g.enabled) continue;
                names += names.empty() ? "'" : ", '";
                names += g.core->name;
                names += "'";
            }
            throw ChannelRetireException("", "csp: every enabled channel guard of this choice is retired (" + names +
                                                 "): it can never communicate");
        }
        case channels::Outcome::Deadlocked: throw DeadlockError(runtime::deadlock_report());
        case channels::Outcome::Unpackable: throw_unpackable(guards[c.index].core);
        case channels::Outcome::Unsupported:
            throw_outcome(c.outcome, guards[c.index].core);  // (a multiprocess child's use of a shared channel)
        case channels::Outcome::Misused:  // (read and write only)
        case channels::Outcome::Done: break;
    }
    throw std::logic_error("csp: unexpected choice outcome");
}

void throw_bad_capacity(const std::string& given) {
    throw UsageError(given + ": capacity must be between 0 and " + std::to_string(channels::kMaxBuffer));
}

void throw_barrier_misused(channels::BarrierCore* b) {
    channels::barrier_misused(b);
    throw ChannelEndError(std::string("csp: barrier '") + b->name +
                          "' is used from an OS process it was not handed to (through a reference or a global); pass "
                          "its ends (or the Barrier) to the csp::multiprocess as arguments, or capture them by value. "
                          "The barrier is poisoned.");
}

void throw_barrier_across_ranks(const channels::BarrierCore* b) {
    throw UsageError(std::string("csp: barrier '") + b->name +
                     "' has members placed on other MPI ranks (csp::on_rank, csp::spread); barriers are not shared "
                     "by ranks yet (they work between fibers, threads and OS processes of one rank): place all of "
                     "a barrier's members on one rank");
}

void throw_barrier_outcome(channels::Outcome o, const channels::BarrierCore* b) {
    if (o == channels::Outcome::Poisoned) throw ChannelPoisonException(b->name);
    if (o == channels::Outcome::Deadlocked) throw DeadlockError(runtime::deadlock_report());
    if (o == channels::Outcome::Unsupported) {
        throw UsageError(std::string("csp: barrier '") + b->name +
                         "' is shared by MPI ranks and is synced from a csp::multiprocess child, which cannot reach "
                         "the other ranks; only the processes of a rank's own OS process (fibers and threads) can "
                         "sync it, so far");
    }
    throw std::logic_error("csp: unexpected barrier outcome");
}

void throw_bad_kind_capacity(const std::string& given) {
    throw UsageError(given + ": an overwriting or dropping buffer holds at least 1 value (and at most " +
                     std::to_string(channels::kMaxBuffer) + ")");
}

void throw_empty_choice() {
    throw ChannelRetireException("", "csp: a choice over an empty std::vector of guards: no guard can ever "
                                     "fire, as when every guard has retired");
}

void throw_retired_end(const char* channel) {
    throw ChannelRetireException(channel, std::string("csp: this end of channel '") + channel +
                                              "' was retired by its own retire() and cannot be used again");
}

void throw_empty_end(const char* what) {
    throw ChannelEndError(std::string("csp: this ") + what +
                          " is empty (moved from or default-constructed); get an end from "
                          "Channel::reader()/writer()");
}

}  // namespace detail

}  // namespace csp
