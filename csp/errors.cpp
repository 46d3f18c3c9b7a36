#include "csp/errors.hpp"

#include "csp/detail/unwinding.hpp"
#include "runtime/runtime.hpp"

#include <cstring>
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

}  // namespace csp
