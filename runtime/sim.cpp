// sim.cpp: deterministic simulation (see runtime.hpp and csp/sim.hpp).
//
// Owns: the simulation's state (its generator, the script being replayed,
// the decisions taken) and the virtual clock. While one runs, the first
// worker alone runs fibers: the others find no work (Worker::find_work),
// new processes all go to it (start_processes), nothing is handed to the
// others (ready, park_chores, add_timer), and each pick of the next
// process takes all the runnable ones and lets a decision choose (sim_pick,
// from pick_next). With one worker, no other OS process (a multiprocess
// runs as a fiber: csp/multiprocess.hpp) and virtual time, the decisions
// are all the run depends on: the same decisions give the same run.
// Must hold: a simulation begins and ends with no process running, from a
// plain thread (the caller, which waits in its Parallel meanwhile).
#include "runtime/scheduler.hpp"

#include "runtime/futex.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>

namespace csp::runtime {

std::atomic<std::int64_t> g_sim_now{0};

namespace {

struct Sim {
    std::mt19937_64 generator;
    const std::vector<std::uint32_t>* script = nullptr;
    std::size_t next = 0;  // in the script
    SimRecord record;
    std::vector<Task*> runnable;  // sim_pick's scratch
    std::uint64_t made = 0;       // processes made so far (Task::sim_id)
    std::int64_t began = 0;       // the virtual time it began at
};
// (Only the first worker uses it while a simulation runs; the thread that
// begins and ends it does so with no process running. The first worker
// still looks for work between runs, but touches it only when it finds
// some: see sim_pick.)
std::atomic<Sim*> g_sim{nullptr};

void drop_timers() noexcept;

// next_in_order: the next runnable process as the scheduler would take it
// without a simulation (sim_pick's way out when it cannot decide).
Task* next_in_order(Worker* w) noexcept {
    if (Task* t = std::exchange(w->run_next, nullptr)) return t;
    if (Task* t = w->pop_local()) return t;
    return w->pop();
}

std::int64_t steady_ns(std::chrono::steady_clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::uint32_t sim_choose(std::uint32_t n) noexcept {
    Sim* s = g_sim.load(std::memory_order_acquire);
    if (n <= 1 || !s) return 0;
    std::uint32_t d;
    if (s->script && s->next < s->script->size()) {
        d = (*s->script)[s->next++];
        if (d >= n) {
            s->record.misfit = true;
            d = 0;
        }
    } else {
        if (s->script) s->record.misfit = true;  // (beyond its end: the run went another way)
        // (Multiply-shift: mt19937_64's output is the same everywhere, and so is this.)
        d = static_cast<std::uint32_t>(((s->generator() >> 32) * n) >> 32);
    }
    try {
        s->record.decisions.push_back(d);
    } catch (...) {
        // (Out of memory: the schedule is incomplete; the run goes on.)
        s->record.misfit = true;
    }
    return d;
}

void sim_begin(std::uint64_t seed, const std::vector<std::uint32_t>* script) {
    if (in_fiber()) throw std::logic_error("a simulation runs from a plain thread (main), not from inside a process");
    Runtime& r = rt();
    if (g_sim.load(std::memory_order_acquire)) throw std::logic_error("a simulation is already running");
    // (Processes of a Parallel that has just returned may still be leaving:
    // each arrives at its join before it gives its fiber back. A moment for
    // them, before taking any left as running.)
    const auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (r.live.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < patience) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (r.live.load(std::memory_order_acquire) != 0) {
        throw std::logic_error("processes are running: a simulation needs the runtime to itself");
    }
    drop_timers();  // (stale ones of processes before, on real time: they would stop the clock)
    auto* s = new Sim;
    s->generator.seed(seed);
    s->script = script;
    s->runnable.reserve(64);
    // Virtual time starts at the real time (so deadlines compare as usual)
    // and moves only when every process waits (sim_advance).
    s->began = steady_ns(std::chrono::steady_clock::now());
    g_sim.store(s, std::memory_order_release);
    g_sim_now.store(s->began, std::memory_order_seq_cst);
    trace_detail::observe(trace_detail::kSimulating, true);  // (channels' fast paths step aside: sim_preempt)
}

namespace {
// drop_timers: the first worker's timers, all stale (no process runs).
void drop_timers() noexcept {
    Worker& w = *started().workers.front();
    Locked<SpinLock> hold(w.timer_lock);
    for (Timer& t : w.timers) release_parker(t.parker);
    w.timers.clear();
    w.next_due.store(Worker::kNoTimer, std::memory_order_relaxed);
}
}  // namespace

SimRecord sim_end() noexcept {
    if (!g_sim.load(std::memory_order_acquire)) return {};
    // The processes it ran may still be ending (the caller's Parallel has
    // returned, or thrown): they end in the simulation too.
    Runtime& r = started();
    while (r.live.load(std::memory_order_acquire) != 0) futex_wait(r.live_zero, 0);
    // Timers left (of waits that ended otherwise) are on virtual time: drop them.
    drop_timers();
    g_sim_now.store(0, std::memory_order_seq_cst);
    trace_detail::observe(trace_detail::kSimulating, false);
    Sim* s = g_sim.exchange(nullptr, std::memory_order_acq_rel);
    if (s->script && s->next < s->script->size()) s->record.misfit = true;  // (decisions left unused)
    SimRecord record = std::move(s->record);
    delete s;
    return record;
}

std::int64_t sim_elapsed_ns() noexcept {
    Sim* s = g_sim.load(std::memory_order_acquire);
    const std::int64_t now = g_sim_now.load(std::memory_order_relaxed);
    return s && now != 0 ? now - s->began : 0;
}

std::uint64_t sim_next_id() noexcept {
    Sim* s = g_sim.load(std::memory_order_acquire);
    return s ? ++s->made : 0;
}

Task* sim_pick(Worker* w) noexcept {
    // (Nothing to run, as between runs: the simulation is not touched.)
    if (!w->has_runnable()) return nullptr;
    Sim* s = g_sim.load(std::memory_order_acquire);
    if (!s) [[unlikely]] return next_in_order(w);  // (a moment after a run's end)
    std::vector<Task*>& ready = s->runnable;
    ready.clear();
    // (Capacity for them all first: push_back must not throw below.)
    std::size_t n = (w->run_next ? 1 : 0) + static_cast<std::size_t>(w->queued.load(std::memory_order_relaxed)) +
                    static_cast<std::size_t>(w->local_count) + 1;
    try {
        ready.reserve(n);
    } catch (...) {
        // (Out of memory: the next in order, and the schedule is off.)
        s->record.misfit = true;
        return next_in_order(w);
    }
    if (Task* t = std::exchange(w->run_next, nullptr)) ready.push_back(t);
    if (Task* t = w->next_shared.exchange(nullptr, std::memory_order_acquire)) ready.push_back(t);
    while (Task* t = w->pop_local()) ready.push_back(t);
    while (Task* t = w->pop()) ready.push_back(t);
    if (ready.empty()) return nullptr;
    // In the order they were made: where each waits (run_next, the private
    // list or the queue) depends on whether the other workers were asleep
    // at the time, which differs from run to run.
    std::sort(ready.begin(), ready.end(), [](const Task* a, const Task* b) { return a->sim_id < b->sim_id; });
    const std::uint32_t k = sim_choose(static_cast<std::uint32_t>(ready.size()));
    for (std::size_t i = 0; i < ready.size(); ++i) {
        if (i != k) w->push_local(ready[i]);
    }
    return ready[k];
}

void sim_preempt() noexcept {
    Worker* w = t_worker;
    if (!w || !w->current.load(std::memory_order_relaxed) || !g_sim.load(std::memory_order_acquire)) return;
    if (!w->has_runnable()) return;  // (nothing else to run: no decision)
    if (sim_choose(2) == 1) yield();
}

void sim_hand_to_first(Task* t) noexcept {
    Worker* first = started().workers.front().get();
    first->push(t);
    (void)first->rouse();
}

bool sim_advance(Worker& w) noexcept {
    const std::int64_t due = w.next_due.load(std::memory_order_relaxed);
    if (due == Worker::kNoTimer) return false;
    // (Not once the run is over: its end sets the time back to 0.)
    std::int64_t now = g_sim_now.load(std::memory_order_relaxed);
    while (now != 0 && due > now &&
           !g_sim_now.compare_exchange_weak(now, due, std::memory_order_relaxed, std::memory_order_relaxed)) {
    }
    if (now == 0) return false;
    (void)w.fire_timers();
    return true;
}

}  // namespace csp::runtime
