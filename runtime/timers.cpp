// timers.cpp: deadlines, for sleep and for timeouts.
//
// Owns: each worker's timer heap (a binary heap on the deadline, the
// worker's alone: no thread per timer, no lock), park_until and sleep_for.
// Must hold: a timer is armed only after its fiber has parked (finish_park),
// and it holds a reference to the parker until it is fired or swept, so a
// late timer never touches a freed parker; it wins nothing but the wait it
// was set for (the token). Plain threads time their own futex waits
// (threads.cpp).
#include "runtime/scheduler.hpp"

#include <algorithm>
#include <functional>
#include <thread>

namespace csp::runtime {
namespace {

// A timer is stale once the wait it was set for has ended (a communication
// or another waker won it): it can never win, so it only holds memory and a
// parker reference. A process that loops on a choice with a long timeout
// would otherwise pile up one per choice; sweeping when the heap has doubled
// keeps the cost amortised O(1) per timer.
bool stale(const Timer& t) noexcept {
    return t.parker->selection.load(std::memory_order_acquire) != waiting_word(t.token);
}

}  // namespace

bool Worker::fire_timers() noexcept {
    const auto now = std::chrono::steady_clock::now();
    bool fired = false;
    while (!timers.empty() && timers.front().deadline <= now) {
        std::pop_heap(timers.begin(), timers.end(), std::greater<>{});
        Timer tm = timers.back();
        timers.pop_back();
        fired |= wake(tm.parker, tm.token, kTimedOut);
        release_parker(tm.parker);
    }
    return fired;
}

void Worker::add_timer(const Timer& t) noexcept {
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
}

std::uint32_t park_until(Parker* p, std::uint64_t token, WaitKind kind, const WaitReason* reason,
                         std::chrono::steady_clock::time_point deadline, Release release) noexcept {
    if (p->is_thread) {
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        deadline - std::chrono::steady_clock::now()).count();
        return park_thread(p, kind, reason, std::max<std::int64_t>(0, left), token, release);
    }
    Task* me = this_worker()->current;
    p->refs.fetch_add(1, std::memory_order_relaxed);  // the timer's reference
    me->timed = true;  // armed by finish_park, on this worker
    me->timer = Timer{deadline, p, token};
    return park_fiber(p, kind, reason, release);
}

void sleep_for(std::chrono::nanoseconds duration) noexcept {
    if (duration <= std::chrono::nanoseconds::zero()) return yield();
    if (!in_fiber()) {
        std::this_thread::sleep_for(duration);
        return;
    }
    Parker* me = current();
    const std::uint64_t token = begin_wait(me);
    static constexpr WaitReason kSleeping{"is sleeping"};
    park_until(me, token, WaitKind::Timed, &kSleeping, std::chrono::steady_clock::now() + duration);
}

}  // namespace csp::runtime
