// shared_lock.hpp: the lock of state that OS processes share (in the arena).
//
// A SharedLock is a word that names its holder: the pid of the OS process
// that holds it (with a high bit, so that a holder is never 0), and the
// worker thread, when a worker holds it (t_lock_id: a fiber that finds the
// lock held by another worker moves there, runtime::note_contended_by).
// The pid is what lets the network outlive a process that dies holding one:
//   - the parent of a child that died looks, before it reaps it, at the
//     locks the child could have held and takes over the ones it did
//     (take_from_dead);
//   - a waiter that has waited a long time checks whether the holder still
//     lives, and takes the lock over if not (a grandchild, say, whose
//     parent died with it).
// Whoever takes a lock over runs the lock's Repair on the object, whose
// state the dead holder may have left half changed (a channel is poisoned:
// channels/channel.cpp), and then has the lock as from lock().
//
// A waiter spins briefly (critical sections are a few pointer moves), then
// backs off: a fiber yields its worker to the other processes and then
// sleeps (growing to 1 ms), a thread yields its core and then sleeps. So a
// holder that is stopped (SIGSTOP), or descheduled, or a fiber of this
// worker, holds up its own waiters only, never the worker they run on.
//
// Locks private to one OS process (run queues, timers, free lists) are
// SpinLocks; a SharedLock costs the same on the fast path (one CAS).
#pragma once

#include <atomic>
#include <cstdint>

namespace csp::runtime {

// g_self_pid: this OS process's pid (set at load, and in a forked child
// before anything else runs there). Hidden: libcsp's own (see g_plain_home),
// read by every lock without a GOT entry between. So lock() and try_lock()
// below link only inside libcsp; code outside (a test) calls lock_outside().
extern std::uint32_t g_self_pid __attribute__((visibility("hidden")));
// t_lock_id: what this thread writes into the word of a lock it takes:
// kHeld | g_self_pid, and on a worker thread its index + 1 in bits 22-30
// (past 511 workers, none), so that a waiter can tell which worker of this
// OS process holds the lock (lock_slow). 0 until the thread's first lock
// (first_lock_id), and again in a forked child.
extern constinit __attribute__((tls_model("initial-exec"), visibility("hidden"))) thread_local std::uint32_t
    t_lock_id;

class SharedLock {
public:
    // Repair: run by whoever takes the lock over from a dead holder, with
    // the lock held.
    using Repair = void (*)(SharedLock*) noexcept;

    constexpr SharedLock() noexcept = default;
    // fibers_yield: a fiber that waits long lets its worker run others (see
    // above); false for a lock taken where a fiber must not switch (the
    // arena's, which a fiber may take while it ends).
    explicit constexpr SharedLock(Repair repair, bool fibers_yield = true) noexcept
        : repair_(repair), fibers_yield_(fibers_yield) {}

    void lock() noexcept {
        std::uint32_t free = 0;
        if (word_.compare_exchange_strong(free, lock_id(), std::memory_order_acquire,
                                          std::memory_order_relaxed)) [[likely]] {
            return;
        }
        lock_slow();
    }
    bool try_lock() noexcept {
        std::uint32_t free = 0;
        return word_.load(std::memory_order_relaxed) == 0 &&
               word_.compare_exchange_strong(free, lock_id(), std::memory_order_acquire,
                                             std::memory_order_relaxed);
    }
    void unlock() noexcept { word_.store(0, std::memory_order_release); }
    // lock_outside: lock(), for code outside libcsp (a test that dies
    // holding a lock), which cannot name g_self_pid.
    void lock_outside() noexcept;

    // note_worker_thread: the calling thread is worker `index` (t_lock_id).
    static void note_worker_thread(int index) noexcept;

    // holder: the pid of the OS process that holds it, 0 when free.
    std::uint32_t holder() const noexcept { return word_.load(std::memory_order_acquire) & kPidMask; }

    // take_from_dead: if OS process `pid`, which has died, holds the lock,
    // take it over, repair the object and unlock it; true if it did.
    bool take_from_dead(std::uint32_t pid) noexcept;

private:
    static constexpr std::uint32_t kHeld = 0x80000000u;
    static constexpr std::uint32_t kPidMask = (1u << 22) - 1;  // (pids are below 2^22; above: a worker, t_lock_id)
    static std::uint32_t lock_id() noexcept {
        if (const std::uint32_t id = t_lock_id) [[likely]] return id;
        return first_lock_id();
    }
    [[gnu::noinline]] static std::uint32_t first_lock_id() noexcept;
    [[gnu::noinline]] void lock_slow() noexcept;
    void wait_for_it() noexcept;  // (lock_slow's wait)
    bool take_over(std::uint32_t seen) noexcept;

    std::atomic<std::uint32_t> word_{0};
    Repair repair_ = nullptr;
    bool fibers_yield_ = true;
};

// process_gone: OS process `pid` has ended (it no longer exists, or is a
// zombie nobody has reaped yet).
bool process_gone(std::uint32_t pid) noexcept;

// process_state: the state letter /proc gives OS process `pid` ('R', 'S',
// 'T' stopped, 'Z' zombie, ...), 0 when there is none.
char process_state(std::uint32_t pid) noexcept;

}  // namespace csp::runtime
