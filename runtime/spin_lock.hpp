// spin_lock.hpp: the lock of channel state.
//
// Channel state lives in the shared arena and may be locked from any thread
// of any OS process of the network, so the lock is a plain atomic word (no
// pthread mutex, whose state is not meant to be copied by fork). Critical
// sections are a handful of pointer moves plus one value move, so spinning is
// cheaper than sleeping; after a short spin the holder is probably descheduled
// and we yield the core to it.
#pragma once

#include <atomic>
#include <cstdint>
#include <sched.h>

namespace csp::runtime {

class SpinLock {
public:
    void lock() noexcept {
        // Fast path: one exchange when uncontended.
        if (!locked_.exchange(true, std::memory_order_acquire)) return;
        lock_slow();
    }
    bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    // Out of line: keeps the spin loop (and its registers) off the callers'
    // fast paths.
    [[gnu::noinline]] void lock_slow() noexcept {
        for (unsigned spins = 0;; ++spins) {
            // Read-only spin keeps the line shared until the holder releases it.
            while (locked_.load(std::memory_order_relaxed)) {
                if (spins < 64) {
                    __builtin_ia32_pause();
                    ++spins;
                } else {
                    sched_yield();
                }
            }
            if (!locked_.exchange(true, std::memory_order_acquire)) return;
        }
    }
    std::atomic<bool> locked_{false};
};

// Scoped holder, like std::lock_guard, usable with any lock above.
template <class Lock>
class Locked {
public:
    explicit Locked(Lock& l) noexcept : lock_(l) { lock_.lock(); }
    ~Locked() { lock_.unlock(); }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

private:
    Lock& lock_;
};

}  // namespace csp::runtime
