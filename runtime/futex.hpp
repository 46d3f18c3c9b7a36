// futex.hpp: the one place the runtime talks to the Linux futex syscall.
//
// The futexes are *shared* (no FUTEX_PRIVATE_FLAG): a word in the shared arena
// may be waited on in one OS process and woken from another (DESIGN.md,
// "doorbell"). Within one process a shared futex costs the same.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace csp::runtime {

// futex_wait blocks while `word` still holds `expected`, at most until
// `timeout` (relative, nanoseconds; negative: no limit). Spurious returns are
// allowed: callers re-check their condition in a loop.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::int64_t timeout_ns = -1) noexcept;

// futex_wake wakes up to `count` waiters of `word`.
void futex_wake(std::atomic<std::uint32_t>& word, int count = 1) noexcept;

}  // namespace csp::runtime
