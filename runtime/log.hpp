// log.hpp: the runtime's own log (spdlog), level from CSP_LOG.
//
// CSP_LOG takes an spdlog level name: trace, debug, info, warn (the default),
// error, critical, off.
#pragma once

#include <spdlog/spdlog.h>

namespace csp::runtime {

// logger returns the runtime's logger ("csp"), writing to stderr.
spdlog::logger& logger();

// reset_logger_after_fork: in a forked child, before anything logs.
void reset_logger_after_fork() noexcept;

// log_fatal writes `message` to stderr and aborts: for states the runtime
// cannot continue from (its arena cannot be mapped, a stack overflowed).
[[noreturn]] void log_fatal(const char* message) noexcept;

}  // namespace csp::runtime
