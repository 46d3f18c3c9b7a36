// threads.cpp: plain threads (main, std::thread) as csp processes.
//
// Owns: each thread's ThreadRecord (made on its first use of csp, in a
// thread-local, and gone when the thread exits) and park_thread, how a
// thread waits. Must hold: a thread counts as running (running_threads)
// from before it is a known thread until after it has left the registry,
// and whenever it is not parked in a Blocked or Join wait, so the deadlock
// detector never reports while it may still wake somebody.
//
// Threads park on a futex: their state moves Running -> Parked (CAS by the
// thread) and ready() exchanges it to Notified, which also covers a ready()
// that comes before the thread sleeps.
#include "runtime/scheduler.hpp"

#include "runtime/futex.hpp"
#include "runtime/trace.hpp"

#include <sched.h>
#include <sstream>

namespace csp::runtime {
namespace {

constexpr std::int64_t kRescueLook = 20'000'000;  // ns

// (initial-exec: see t_worker.)
__attribute__((tls_model("initial-exec"))) thread_local std::unique_ptr<ThreadRecord> t_thread;

// The first thread to use csp is almost always main (in a forked child, the
// one that runs the child's call).
std::atomic<bool> g_main_taken{false};

}  // namespace

ThreadRecord::ThreadRecord(std::string_view given) {
    // Counted as running first: once note_thread makes it a known thread it
    // no longer vetoes a deadlock report, and until it is in the registry
    // only this count says that it may still wake somebody. (The other order
    // let the detector report a deadlock while this thread was registering.)
    Runtime& r = rt();
    r.running_threads.fetch_add(1, std::memory_order_seq_cst);
    r.registry.note_thread(true);
    parker = new_parker(this, true);
    std::ostringstream id;
    id << std::this_thread::get_id();
    bool expected = false;
    if (!given.empty()) name = given;
    else name = g_main_taken.compare_exchange_strong(expected, true) ? "main" : "thread " + id.str();
    r.registry.add(parker);
    trace_process_start(parker, name.c_str());
}

ThreadRecord::~ThreadRecord() {
    Runtime& r = rt();
    r.registry.note_thread(false);
    r.registry.remove(parker);
    release_parker(parker);
    r.running_threads.fetch_sub(1, std::memory_order_seq_cst);
    r.check_quiet();
}

Parker* known_thread_parker() noexcept { return t_thread ? t_thread->parker : nullptr; }

void forget_this_thread() noexcept { t_thread.reset(); }

bool name_this_thread(std::string_view name) {
    if (t_thread) return false;
    t_thread = std::make_unique<ThreadRecord>(name.empty() ? std::string_view("thread") : name);
    return true;
}

ThreadRecord& this_thread_record() {
    if (!t_thread) t_thread = std::make_unique<ThreadRecord>();
    return *t_thread;
}

void stop_counting_as_running() noexcept {
    rt().running_threads.fetch_sub(1, std::memory_order_seq_cst);
    rt().check_quiet();
}

void count_as_running_again() noexcept {
    rt().running_threads.fetch_add(1, std::memory_order_seq_cst);
    rt().thread_wakes.fetch_add(1, std::memory_order_seq_cst);
    left_quiet();
}

std::uint32_t park_thread(Parker* p, WaitKind kind, const WaitReason* reason, std::int64_t timeout_ns,
                          std::uint64_t token, Release release) noexcept {
    if (p->is_guest) return park_guest(p, kind, reason, timeout_ns, token, release);
    p->wait_reason.store(reason, std::memory_order_relaxed);
    p->wait_kind.store(kind, std::memory_order_relaxed);
    // A ready() after this finds Running and leaves Notified: the CAS below
    // then fails and the thread goes on without sleeping.
    release();
    std::uint32_t expected = kRunning;
    if (p->state.compare_exchange_strong(expected, kParked, std::memory_order_acq_rel)) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
        // A short spin first: the partner is often on another core (or in
        // another OS process) and about to answer; a futex sleep and wake-up
        // costs tens of microseconds on a virtual machine.
        for (int i = 0; i < 128 && p->state.load(std::memory_order_acquire) == kParked; ++i) {
            __builtin_ia32_pause();
        }
        for (int i = 0; i < 64 && p->state.load(std::memory_order_acquire) == kParked; ++i) sched_yield();
        // Only now, about to sleep, does it stop counting as running (and
        // the deadlock detector may look): not on every short wait.
        const bool counted = can_deadlock(kind) && p->state.load(std::memory_order_acquire) == kParked;
        if (counted) stop_counting_as_running();
        // A wait that another OS process may end (a Remote one, or a Timed
        // one on channels that cross) is looked at every kRescueLook as
        // well: a waker there that died after it had won it leaves it to a
        // rescue, which is seen here (finish_rescue in worker.cpp).
        const std::uint64_t epoch = p->selection.load(std::memory_order_relaxed) >> 32;
        while (p->state.load(std::memory_order_acquire) == kParked) {
            if (const std::uint64_t rescue = p->rescue.load(std::memory_order_acquire);
                (rescue & Parker::kRescueDone) && (rescue >> 32) == epoch) {
                std::uint32_t parked = kParked;
                if (p->state.compare_exchange_strong(parked, kRunning, std::memory_order_acq_rel)) break;
                continue;
            }
            std::int64_t left = -1;
            if (timeout_ns >= 0) {
                left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           deadline - std::chrono::steady_clock::now()).count();
                if (left <= 0) {
                    // Our own timer: win the wait, then ready ourselves.
                    if (wake(p, token, kTimedOut)) continue;
                    timeout_ns = -1;  // somebody else won: their ready is coming
                    left = -1;
                }
            }
            if ((kind == WaitKind::Remote || kind == WaitKind::Timed) && (left < 0 || left > kRescueLook)) {
                left = kRescueLook;
            }
            futex_wait(p->state, kParked, left);
        }
        if (counted) count_as_running_again();
    }
    p->state.store(kRunning, std::memory_order_relaxed);
    p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
    return outcome_of(p);
}


void forget_thread_record_after_fork() noexcept {
    (void)t_thread.release();  // the parent's record of this thread, not the child's to destroy
    g_main_taken.store(false, std::memory_order_relaxed);
}

void release_thread_parker_at_exit() noexcept {
    // The OS process ends with this thread (exit_os_process): its parker
    // leaves the registry and goes back to the pool. The record itself, and
    // the running count it holds, go with the OS process: nobody may report
    // a deadlock while it exits.
    if (!t_thread || !g_runtime.load()) return;
    ThreadRecord* record = t_thread.release();
    started().registry.remove(record->parker);
    release_parker(record->parker);
}

}  // namespace csp::runtime
