// log.cpp: the runtime's spdlog logger ("csp", stderr), its level from
// CSP_LOG, its remaking in a forked child, and log_fatal.

#include "runtime/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <unistd.h>
#include <cstring>

namespace csp::runtime {

namespace {
std::shared_ptr<spdlog::logger> make_logger() {
    return [] {
        auto l = std::make_shared<spdlog::logger>(
            "csp", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
        l->set_pattern("[%H:%M:%S.%e] [csp] [%^%l%$] %v");
        l->set_level(spdlog::level::warn);
        if (const char* env = std::getenv("CSP_LOG")) {
            auto level = spdlog::level::from_str(env);
            // from_str maps unknown names to "off"; say so instead of going quiet.
            if (level == spdlog::level::off && std::strcmp(env, "off") != 0) {
                l->warn("CSP_LOG='{}' is not a level (trace, debug, info, warn, error, "
                        "critical, off); keeping 'warn'", env);
            } else {
                l->set_level(level);
            }
        }
        return l;
    }();
}

// Held here (not only in spdlog's registry) so it outlives any static
// destructor of the runtime that still wants to log at exit. A pointer, so
// that a forked child can replace it (see reset_logger_after_fork).
std::shared_ptr<spdlog::logger>* g_log = nullptr;
}  // namespace

spdlog::logger& logger() {
    static std::shared_ptr<spdlog::logger>* log = g_log = new std::shared_ptr<spdlog::logger>(make_logger());
    (void)log;
    return **g_log;
}

void reset_logger_after_fork() noexcept {
    // Another thread of the parent may have held the sink's mutex at the
    // fork: the child's copy of it would stay locked for ever. Leave the
    // old logger alone and make a new one.
    (void)logger();
    g_log = new std::shared_ptr<spdlog::logger>(make_logger());
}

void log_fatal(const char* message) noexcept {
    // Async-signal-safe: may be called from the stack-overflow handler.
    (void)!write(STDERR_FILENO, message, std::strlen(message));
    (void)!write(STDERR_FILENO, "\n", 1);
    std::abort();
}

}  // namespace csp::runtime
