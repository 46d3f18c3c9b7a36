// support.cpp: the non-template parts of the typed layer.
#include "csp/alternation.hpp"
#include "csp/channel.hpp"
#include "csp/process.hpp"

#include "runtime/log.hpp"

#include <string_view>

namespace csp::detail {

std::string derived_name(const char* kind, const std::source_location& where) {
    std::string_view file = where.file_name();
    if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
    return std::string(kind) + "@" + std::string(file) + ":" + std::to_string(where.line());
}

void throw_outcome(channels::Outcome o, const channels::ChannelCore* c) {
    switch (o) {
        case channels::Outcome::Poisoned: throw ChannelPoisonException(c->name);
        case channels::Outcome::Retired: throw ChannelRetireException(c->name);
        case channels::Outcome::Deadlocked: throw DeadlockError(runtime::deadlock_report());
        case channels::Outcome::Misused:
            throw ChannelEndError(std::string("csp: channel '") + c->name +
                                  "' is used from an OS process it was not handed to (through a reference "
                                  "or a global); pass its ends to the csp::multiprocess as arguments, or "
                                  "capture them by value. The channel is poisoned.");
        case channels::Outcome::Done: break;
    }
    throw std::logic_error("csp: unexpected channel outcome");
}

void throw_choice(channels::Choice c, const channels::Guard* guards) {
    switch (c.outcome) {
        case channels::Outcome::Poisoned: throw ChannelPoisonException(guards[c.index].core->name);
        // Every guard is disabled (retired, or by its pre-condition) and no
        // skip or timeout can fire: the choice can never complete.
        case channels::Outcome::Retired: throw ChannelRetireException();
        case channels::Outcome::Deadlocked: throw DeadlockError(runtime::deadlock_report());
        case channels::Outcome::Misused:  // (read and write only)
        case channels::Outcome::Done: break;
    }
    throw std::logic_error("csp: unexpected choice outcome");
}

void throw_empty_end(const char* what) {
    throw ChannelEndError(std::string("csp: this ") + what +
                          " is empty (moved from or default-constructed); get an end from "
                          "Channel::reader()/writer()");
}

void rethrow_failure(const std::string& name, std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const RemoteError& x) {  // from an OS process: name the original's type too
        throw ProcessError(name, e, x.type_name() + ": " + x.what());
    } catch (const std::exception& x) {
        throw ProcessError(name, e, x.what());
    } catch (...) {
        throw ProcessError(name, e, "an exception not derived from std::exception");
    }
}

void log_spawned_failure(const char* name, std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        runtime::logger().error("spawned process '{}' failed: {}", name, x.what());
    } catch (...) {
        runtime::logger().error("spawned process '{}' failed with a non-standard exception", name);
    }
}

// A fiber process keeps the Join of the processes it spawned in its
// ProcessArea, as a heap-held JoinRef.
void start_spawned(std::vector<std::unique_ptr<runtime::ProcessBody>>& bodies) {
    if (runtime::in_fiber()) {
        JoinRef*& join = area_of(runtime::current()).spawned;
        if (!join) join = new JoinRef(std::make_shared<runtime::Join>(0));
        const auto n = static_cast<std::int64_t>(bodies.size());
        (*join)->add(n);
        for (auto& b : bodies) static_cast<BodyBase*>(b.get())->join_at(*join);
        try {
            runtime::start_processes(bodies);
        } catch (...) {
            (*join)->add(-n);  // none of them started
            throw;
        }
        return;
    }
    // In a thread, the runtime joins every process still running at exit.
    runtime::start_processes(bodies);
}

void join_spawned() noexcept {
    JoinRef*& join = area_of(runtime::current()).spawned;
    if (join) {
        (*join)->wait();
        delete join;
        join = nullptr;
    }
}

}  // namespace csp::detail
