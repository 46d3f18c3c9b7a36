#include "runtime/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <unistd.h>
#include <cstring>

namespace csp::runtime {

spdlog::logger& logger() {
    // Held here (not only in spdlog's registry) so it outlives any static
    // destructor of the runtime that still wants to log at exit.
    static std::shared_ptr<spdlog::logger> log = [] {
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
    return *log;
}

void log_fatal(const char* message) noexcept {
    // Async-signal-safe: may be called from the stack-overflow handler.
    (void)!write(STDERR_FILENO, message, std::strlen(message));
    (void)!write(STDERR_FILENO, "\n", 1);
    std::abort();
}

}  // namespace csp::runtime
