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
        wake(job.parker, job.token, kWoken);
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

void run_io(const std::function<void()>& call) noexcept {
    if (!in_fiber()) {
        call();
        return;
    }
    struct Submit {
        IoPool* pool;
        IoPool::Job job;
    } submit{&rt().io, {&call, current(), 0}};
    submit.job.token = begin_wait(submit.job.parker);
    static constexpr WaitReason kInIo{"is waiting for a blocking call (csp::io)"};
    park(submit.job.parker, WaitKind::Timed, &kInIo,
         {[](void* arg) noexcept {
              auto* s = static_cast<Submit*>(arg);
              s->pool->submit(s->job);
          },
          &submit});
}

}  // namespace csp::runtime
