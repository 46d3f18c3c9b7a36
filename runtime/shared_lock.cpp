// shared_lock.cpp: waiting for a SharedLock, and taking one over from a dead
// holder (see shared_lock.hpp).
#include "runtime/shared_lock.hpp"

#include "runtime/runtime.hpp"
#include "runtime/scheduler.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sched.h>
#include <thread>
#include <unistd.h>

namespace csp::runtime {

std::uint32_t g_self_pid = 0;
constinit thread_local std::uint32_t t_lock_id = 0;

std::uint32_t SharedLock::first_lock_id() noexcept { return t_lock_id = kHeld | g_self_pid; }

void SharedLock::note_worker_thread(int index) noexcept {
    t_lock_id = kHeld | g_self_pid | (index < 511 ? static_cast<std::uint32_t>(index + 1) << 22 : 0);
}

namespace {
// Before any static constructor that could take a lock (priority 101 runs
// before the default ones); a forked child sets it again (fork.cpp).
__attribute__((constructor(101))) void note_self_pid() {
    g_self_pid = static_cast<std::uint32_t>(getpid());
}

using Clock = std::chrono::steady_clock;

// How long a waiter spins before it backs off, and how often, once it
// sleeps, it looks whether the holder is still alive.
constexpr int kSpins = 64;
constexpr int kYields = 16;
constexpr auto kFirstNap = std::chrono::microseconds(20);
constexpr auto kLongestNap = std::chrono::milliseconds(1);
constexpr auto kLivenessEvery = std::chrono::milliseconds(5);

}  // namespace

char process_state(std::uint32_t pid) noexcept {
    char path[48];
    std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
    FILE* f = std::fopen(path, "re");
    if (!f) return 0;
    char buf[512];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // The state is the field after the parenthesised name (which may itself
    // hold parentheses).
    const char* close = std::strrchr(buf, ')');
    return close && close[1] == ' ' ? close[2] : 0;
}

bool process_gone(std::uint32_t pid) noexcept {
    if (pid == 0 || pid == g_self_pid) return false;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) return true;
    const char state = process_state(pid);  // (a zombie still answers kill())
    return state == 'Z' || state == 'X';
}

bool SharedLock::take_over(std::uint32_t seen) noexcept {
    if (!word_.compare_exchange_strong(seen, lock_id(), std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return false;
    }
    if (repair_) repair_(this);
    return true;
}

void SharedLock::lock_outside() noexcept { lock(); }

bool SharedLock::take_from_dead(std::uint32_t pid) noexcept {
    const std::uint32_t seen = word_.load(std::memory_order_acquire);
    if (pid == 0 || (seen & (kHeld | kPidMask)) != (kHeld | pid) || !take_over(seen)) return false;
    unlock();
    return true;
}

void SharedLock::lock_slow() noexcept {
    // Held by another worker of this OS process: the caller may move there
    // once done (note_contended_by, made once the lock is taken: a wait that
    // yielded would have made it stale), and its worker counts it
    // (Worker::contended). Not a holder in another OS process, a plain
    // thread or this worker: moving cannot help there.
    std::uint32_t follow = 0;
    if (Worker* w = t_worker; w && fibers_yield_) {
        const std::uint32_t seen = word_.load(std::memory_order_relaxed);
        const std::uint32_t by = (seen >> 22) & 0x1ff;
        if (by != 0 && (seen & kPidMask) == g_self_pid && by != ((lock_id() >> 22) & 0x1ff)) {
            ++w->contended;
            follow = by;
        }
    }
    wait_for_it();
    if (follow != 0) note_contended_by(follow - 1);
}

void SharedLock::wait_for_it() noexcept {
    Clock::time_point since{};
    Clock::time_point next_look{};
    auto nap = std::chrono::duration_cast<std::chrono::nanoseconds>(kFirstNap);
    for (int round = 0;; ++round) {
        const std::uint32_t seen = word_.load(std::memory_order_relaxed);
        if (seen == 0) {
            std::uint32_t free = 0;
            if (word_.compare_exchange_weak(free, lock_id(), std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
                return;
            }
            continue;
        }
        if (round < kSpins) {
            __builtin_ia32_pause();
            continue;
        }
        // A fiber lets the other processes of its worker run (the holder may
        // be one of them, parked in its own back-off); a thread, the others
        // of its core.
        const bool fiber = fibers_yield_ && in_fiber();
        if (round < kSpins + kYields) {
            if (fiber) yield();
            else sched_yield();
            continue;
        }
        const Clock::time_point now = Clock::now();
        if (since == Clock::time_point{}) {
            since = now;
            next_look = now + kLivenessEvery;
        }
        if (repair_ && now >= next_look) {
            next_look = now + kLivenessEvery;
            if (process_gone(seen & kPidMask) && take_over(seen)) return;
        }
        if (fiber) sleep_for(nap);
        else std::this_thread::sleep_for(nap);
        nap = std::min<std::chrono::nanoseconds>(nap * 2, kLongestNap);
    }
}

}  // namespace csp::runtime
