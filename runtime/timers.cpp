// timers.cpp: deadlines, for sleep and for timeouts.
//
// Owns: each worker's timer heap (a binary heap on the deadline, under the
// worker's timer lock: no thread per timer), the take-over of a busy
// worker's overdue timers by an idle one, park_until and sleep_for.
// Must hold: a timer is armed only after its fiber has parked (finish_park),
// and it holds a reference to the parker until it is fired or swept, so a
// late timer never touches a freed parker; it wins nothing but the wait it
// was set for (the token). Plain threads time their own futex waits
// (threads.cpp).
//
// Why a take-over: a worker fires its timers when it parks a process or
// looks for work, so one that runs a process computing without a pause
// fires none, and with another worker idle a 10 ms sleeper parked there ran
// once in 2 s. An idle worker sleeps at most until another's earliest
// deadline plus kTimerGrace and then fires that worker's overdue timers
// itself (the woken processes run on the idle worker). The grace leaves the
// owner, when it is not busy, time to fire its own (it almost always does
// first: an idle worker then finds nothing overdue). With one worker there
// is nobody to take over: a long computation calls csp::yield().
#include "runtime/scheduler.hpp"

#include "runtime/futex.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace csp::runtime {
namespace {

constexpr std::int64_t kTimerGrace = kTakeOverGrace;

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// A timer is stale once the wait it was set for has ended (a communication
// or another waker won it): it can never win, so it only holds memory and a
// parker reference. A process that loops on a choice with a long timeout
// would otherwise pile up one per choice; sweeping when the heap has doubled
// keeps the cost amortised O(1) per timer.
bool stale(const Timer& t) noexcept {
    return t.parker->selection.load(std::memory_order_acquire) != waiting_word(t.token);
}

}  // namespace

namespace {

// fire_due: the due timers of `w`'s heap (its timer lock held), by the
// calling worker (the woken processes are readied here).
bool fire_due(Worker& w, std::chrono::steady_clock::time_point now) noexcept {
    bool fired = false;
    while (!w.timers.empty() && w.timers.front().deadline <= now) {
        std::pop_heap(w.timers.begin(), w.timers.end(), std::greater<>{});
        Timer tm = w.timers.back();
        w.timers.pop_back();
        fired |= wake(tm.parker, tm.token, kTimedOut);
        release_parker(tm.parker);
    }
    w.next_due.store(w.timers.empty() ? Worker::kNoTimer : steady_ns(w.timers.front().deadline),
                     std::memory_order_relaxed);
    return fired;
}

}  // namespace

bool Worker::fire_timers() noexcept {
    const auto now = runtime::now();
    if (next_due.load(std::memory_order_relaxed) > steady_ns(now)) return false;
    Locked<SpinLock> hold(timer_lock);
    return fire_due(*this, now);
}

bool Worker::take_over_timers() noexcept {
    Runtime& r = started();
    const auto now = std::chrono::steady_clock::now();
    const std::int64_t overdue = steady_ns(now) - kTimerGrace;
    bool fired = false;
    for (auto& other : r.workers) {
        Worker& w = *other;
        if (&w == this || w.next_due.load(std::memory_order_relaxed) > overdue) continue;
        if (!w.timer_lock.try_lock()) continue;  // its owner is firing them
        fired |= fire_due(w, now);
        w.timer_lock.unlock();
    }
    return fired;
}

namespace {
// wake_time: when an idle `self` should wake for the timers: its own
// earliest, or another worker's overdue by the grace.
std::int64_t wake_time(const Worker& self) noexcept {
    std::int64_t at = self.next_due.load(std::memory_order_seq_cst);
    for (auto& other : started().workers) {
        const std::int64_t due = other->next_due.load(std::memory_order_seq_cst);
        if (other.get() != &self && due != Worker::kNoTimer) at = std::min(at, due + kTimerGrace);
    }
    return at;
}
}  // namespace

void Worker::sleep_idle() noexcept {
    // Publish the wake time, then look again: a timer added meanwhile either
    // sees it (and rouses us, add_timer) or is seen here (seq_cst on both
    // sides).
    wakes_at.store(wake_time(*this), std::memory_order_seq_cst);
    const std::int64_t at = wake_time(*this);
    wakes_at.store(at, std::memory_order_seq_cst);
    std::int64_t timeout = -1;
    if (at != kNoTimer) timeout = std::max<std::int64_t>(0, at - steady_ns(std::chrono::steady_clock::now()));
    // (Simulated: the first worker's timers are on virtual time, and it
    // fires them itself; the others sleep until roused.)
    if (simulating() && index != 0) timeout = -1;
    // (Not past the end of a pause in stealing: may_steal.)
    if (const std::int64_t after = steal_after.load(std::memory_order_relaxed); after != 0 && !simulating()) {
        const std::int64_t until = std::max<std::int64_t>(1, after - steady_ns(std::chrono::steady_clock::now()));
        if (timeout < 0 || timeout > until) timeout = until;
    }
    // Another worker is busy: look now and then whether it keeps a process
    // it woke from running (take_over_woken).
    if (started().idle.load(std::memory_order_relaxed) < static_cast<int>(started().workers.size()) &&
        (timeout < 0 || timeout > kBusyLook) && !simulating()) {
        timeout = kBusyLook;
    }
    if (timeout != 0) futex_wait(sleeping, 1, timeout);
    wakes_at.store(0, std::memory_order_relaxed);
}

void Worker::add_timer(const Timer& t) noexcept {
    Locked<SpinLock> hold(timer_lock);
    if (timers.size() >= sweep_at) {
        std::size_t kept = 0;
        for (Timer& tm : timers) {
            if (stale(tm)) release_parker(tm.parker);
            else timers[kept++] = tm;
        }
        timers.resize(kept);
        std::make_heap(timers.begin(), timers.end(), std::greater<>{});
        sweep_at = std::max<std::size_t>(1024, 2 * kept);
    }
    timers.push_back(t);
    std::push_heap(timers.begin(), timers.end(), std::greater<>{});
    next_due.store(steady_ns(timers.front().deadline), std::memory_order_seq_cst);
    // An idle worker asleep past this timer's grace would not be there to
    // take it over should this worker be busy then: rouse one to look again.
    Runtime& r = started();
    if (r.idle.load(std::memory_order_seq_cst) == 0 || simulating()) return;
    const std::int64_t want = steady_ns(t.deadline) + kTimerGrace;
    for (auto& other : r.workers) {
        if (other.get() != this && other->wakes_at.load(std::memory_order_seq_cst) > want) {
            if (other->rouse()) return;
        }
    }
}

namespace {
std::uint32_t park_until_untraced(Parker* p, std::uint64_t token, WaitKind kind, const WaitReason* reason,
                                  std::chrono::steady_clock::time_point deadline, Release release) noexcept {
    if (p->is_thread) {
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - runtime::now()).count();
        return park_thread(p, kind, reason, std::max<std::int64_t>(0, left), token, release);
    }
    Task* me = this_worker()->current.load(std::memory_order_relaxed);
    p->refs.fetch_add(1, std::memory_order_relaxed);  // the timer's reference
    me->timed = true;  // armed by finish_park, on this worker
    me->timer = Timer{deadline, p, token};
    return park_fiber(p, kind, reason, release);
}
}  // namespace

std::uint32_t park_until(Parker* p, std::uint64_t token, WaitKind kind, const WaitReason* reason,
                         std::chrono::steady_clock::time_point deadline, Release release) noexcept {
    if (!tracing()) [[likely]] return park_until_untraced(p, token, kind, reason, deadline, release);
    const bool slice = trace_block_begin(p, reason);  // (a slice while it waits: see park)
    const std::uint32_t word = park_until_untraced(p, token, kind, reason, deadline, release);
    if (slice) trace_block_end(p);
    return word;
}

void sleep_for(std::chrono::nanoseconds duration) noexcept {
    if (duration <= std::chrono::nanoseconds::zero()) return yield();
    static constexpr WaitReason kSleeping{"is sleeping"};
    if (!in_fiber() && !t_guest_parker) {
        const bool slice = tracing() && trace_block_begin(current_if_known(), &kSleeping);
        std::this_thread::sleep_for(duration);
        if (slice) trace_block_end(current_if_known());
        return;
    }
    Parker* me = current();
    const std::uint64_t token = begin_wait(me);
    park_until(me, token, WaitKind::Timed, &kSleeping, runtime::now() + duration);
}

}  // namespace csp::runtime
