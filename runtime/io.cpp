// io.cpp: csp::io, blocking calls on helper threads.
//
// Owns: the IoPool (its helper threads, their queue of jobs) and run_io.
// Must hold: a job is queued only once its fiber has parked (the park rule:
// a quick job could otherwise wake it while it switches away); there is one
// helper per job not yet taken, since jobs may wait for each other (two
// multiprocesses that talk each run in a job, see fork.cpp), so a job never
// waits for a helper busy with another job.
#include "runtime/scheduler.hpp"

namespace csp::runtime {

void IoPool::loop() noexcept {
    rt().registry.note_thread(true);
    std::unique_lock<std::mutex> hold(mutex);
    for (;;) {
        ++idle;
        cv.wait(hold, [this] { return stop || !jobs.empty(); });
        --idle;
        if (jobs.empty()) return;
        Job job = jobs.front();
        jobs.pop_front();
        hold.unlock();
        (*job.call)();
        forget_this_thread();  // (a job that waited on a channel made the helper a known thread)
        wake(job.parker, job.token, kWoken);
        if (job.counted) {  // (run_os_job's: it ran until the wake-up, which leaves its caller running)
            Runtime& r = started();
            r.thread_wakes.fetch_add(1, std::memory_order_seq_cst);
            r.running_threads.fetch_sub(1, std::memory_order_seq_cst);
            r.check_quiet();  // (its caller may have parked again meanwhile: nobody else would look)
        }
        hold.lock();
    }
}

void IoPool::submit(const Job& job) {
    {
        std::lock_guard<std::mutex> hold(mutex);
        jobs.push_back(job);
        // One helper per job not yet taken: idle helpers may not have woken
        // for the jobs queued before this one.
        if (jobs.size() > static_cast<std::size_t>(idle)) threads.emplace_back([this] { loop(); });
    }
    cv.notify_one();
}

void IoPool::stop_all() noexcept {
    {
        std::lock_guard<std::mutex> hold(mutex);
        stop = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
}

namespace {
void submit_and_park(const std::function<void()>& call, WaitKind kind, const WaitReason* why) noexcept {
    struct Submit {
        IoPool* pool;
        IoPool::Job job;
    } submit{&rt().io, {&call, current(), 0, kind == WaitKind::OsJoin}};
    submit.job.token = begin_wait(submit.job.parker);
    park(submit.job.parker, kind, why,
         {[](void* arg) noexcept {
              auto* s = static_cast<Submit*>(arg);
              s->pool->submit(s->job);
          },
          &submit});
}
}  // namespace

void run_io(const std::function<void()>& call) noexcept {
    if (!in_fiber()) {
        call();
        return;
    }
    static constexpr WaitReason kInIo{"is waiting for a blocking call (csp::io)"};
    submit_and_park(call, WaitKind::Timed, &kInIo);
}

void run_os_job(const std::function<void()>& call) noexcept {
    // The helper counts as running from here (before its caller parks, so
    // that nobody sees this OS process quiet with the job not yet begun)
    // until it has woken its caller (IoPool::loop), but while it waits for
    // the child (os_job_waiting).
    (void)current();  // (a thread: registered, and so counted, before the count moves)
    rt().running_threads.fetch_add(1, std::memory_order_seq_cst);
    static constexpr WaitReason kInChild{"is waiting for its OS process to end"};
    submit_and_park(call, WaitKind::OsJoin, &kInChild);
}

void os_job_waiting(bool waiting) noexcept {
    Runtime& r = started();
    if (waiting) {
        r.thread_wakes.fetch_add(1, std::memory_order_seq_cst);
        r.running_threads.fetch_sub(1, std::memory_order_seq_cst);
        r.check_quiet();
        return;
    }
    // The child has ended: this OS process runs again, from outside any of
    // its processes (a crossing: see across.cpp).
    r.running_threads.fetch_add(1, std::memory_order_seq_cst);
    r.thread_wakes.fetch_add(1, std::memory_order_seq_cst);
    left_quiet();
    crossed();
}

}  // namespace csp::runtime
