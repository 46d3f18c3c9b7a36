// processes.cpp: starting fiber processes and joining them.
//
// Owns: make_task (a task, its stack and its parker), start_processes (into
// the registry, onto run queues) and Join. Must hold: a process is in the
// registry and counted live before it can run; a thread that starts
// processes is registered first (it is a possible waker of them, or the
// first one to block could look deadlocked); nothing of a batch that failed
// to start is left behind.
#include "runtime/scheduler.hpp"

#include <algorithm>

namespace csp::runtime {
namespace {

// make_task: a task record (pooled: a million processes' records lie close
// together, where a million stacks lie 128 KiB apart) and its stack, whose
// memory the fiber first touches when it first runs.
Task* make_task(std::unique_ptr<ProcessBody>& body) {
    Task* t = new_task();
    t->sim_id = simulating() ? sim_next_id() : 0;
    try {
        make_context(t->context, task_entry, t);
    } catch (...) {
        free_task(t);
        throw;
    }
    try {
        t->parker = new_parker(t, false);
    } catch (...) {
        discard_task(t);
        throw;
    }
    t->body = std::move(body);
    t->context.name = t->body->name_c_str();
    return t;
}

}  // namespace

void start_processes(std::vector<std::unique_ptr<ProcessBody>>& bodies) {
    if (!in_fiber()) this_thread_record();  // (see above)
    Runtime& r = rt();
    std::vector<Task*> tasks;
    tasks.reserve(bodies.size());
    try {
        for (auto& b : bodies) tasks.push_back(make_task(b));
        std::vector<Parker*> parkers(tasks.size());
        for (std::size_t i = 0; i < tasks.size(); ++i) parkers[i] = tasks[i]->parker;
        r.registry.add(parkers.data(), parkers.size());
    } catch (...) {
        for (Task* t : tasks) {  // never started: undo quietly
            release_parker(t->parker);
            discard_task(t);
        }
        throw;
    }
    if (r.live.fetch_add(static_cast<std::int64_t>(tasks.size()), std::memory_order_acq_rel) == 0) {
        r.live_zero.store(0);
    }
    if (Worker* w = this_worker()) {
        // From a process: queue them here; idle workers steal.
        for (Task* t : tasks) {
            t->home.store(w->index, std::memory_order_relaxed);
            w->push(t);
        }
        if (!simulating()) r.wake_idle_worker();
        return;
    }
    // From a thread: deal them out over the workers, then wake each once.
    // (Simulated: the first worker runs them all.)
    const std::size_t n = simulating() ? 1 : r.workers.size();
    std::size_t i = r.next_worker.fetch_add(1, std::memory_order_relaxed);
    for (Task* t : tasks) {
        Worker* w = r.workers[i++ % n].get();
        t->home.store(w->index, std::memory_order_relaxed);
        w->push(t);
    }
    for (std::size_t k = 0; k < std::min(n, tasks.size()); ++k) r.workers[k]->rouse();
}

void Join::arrive() noexcept {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // Last one: wake the joiner if it waits. Its lock is held until it has
    // parked, so a joiner seen here can be readied.
    Parker* p;
    {
        Locked<SpinLock> hold(lock_);
        p = joiner_;
    }
    if (p) wake(p, token_, kWoken);
}

bool Join::wait() noexcept {
    lock_.lock();
    if (remaining_.load(std::memory_order_acquire) == 0) {
        lock_.unlock();
        return true;
    }
    if (interrupted_) {
        interrupted_ = false;
        lock_.unlock();
        return false;
    }
    Parker* me = current();
    token_ = begin_wait(me);
    joiner_ = me;
    return park(me, WaitKind::Join, &reason_, unlocking(lock_)) != kInterrupted;
}

void Join::interrupt() noexcept {
    // (As arrive: a joiner seen under the lock has parked. A stale token
    // wins nothing.)
    Parker* p;
    {
        Locked<SpinLock> hold(lock_);
        p = joiner_;
        // (No wait in progress to end, or it has just ended otherwise: the
        // next wait() ends at once.)
        if (!p || !try_complete(p, token_, kInterrupted)) {
            interrupted_ = true;
            return;
        }
    }
    ready(p);
}

}  // namespace csp::runtime
