#include "csp/errors.hpp"

#include "runtime/runtime.hpp"

#include <cstring>
#include <string>

namespace csp {

namespace {
std::string describe(const char* what, const std::string& channel) {
    return channel.empty() ? std::string(what) : std::string(what) + ": '" + channel + "'";
}

// The unwinding rule needs to know, in an end's destructor, whether the
// exception in flight is a retire. While a ChannelRetireException made in
// this process is alive, slots[0] holds the uncaught-exception count at
// which it unwinds; its destructor (the end of the catch that handled it)
// clears the mark.
void mark_retire_in_flight(const void* process) {
    auto* p = static_cast<runtime::Parker*>(const_cast<void*>(process));
    p->slots[0] = std::uncaught_exceptions() + 1;
}
}  // namespace

ChannelPoisonException::ChannelPoisonException(std::string channel)
    : channel_(std::move(channel)), message_(describe("channel poisoned", channel_)) {}

ChannelRetireException::ChannelRetireException(std::string channel)
    : channel_(std::move(channel)),
      message_(describe("channel retired", channel_)),
      process_(runtime::current()) {
    mark_retire_in_flight(process_);
}

ChannelRetireException::ChannelRetireException(const ChannelRetireException& other)
    : std::exception(other),
      channel_(other.channel_),
      message_(other.message_),
      process_(runtime::current()) {
    mark_retire_in_flight(process_);
}

ChannelRetireException::~ChannelRetireException() {
    // Only in the process that threw it: elsewhere process_ may be gone.
    if (runtime::current() == process_) static_cast<runtime::Parker*>(const_cast<void*>(process_))->slots[0] = 0;
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
