// bench/peers/fiber_common.hpp: what the Boost.Fiber peers (*_fiber.cpp) share.
//
//   parse_fiber_args   <prog> [count] [rr|ws|ws-suspend] [threads], or the
//                      usage and exit(2)
//   WorkStealingPool   work_stealing on `threads` threads for as long as it lives
//   run_on_scheduler   runs a body on the scheduler the command line chose
//
// The schedulers (the impl= of the RESULT line):
//   rr          round_robin scheduler, one thread (the default)
//   ws          work_stealing over `threads` threads (default: all cores),
//               Boost's default: idle threads spin looking for work
//   ws-suspend  work_stealing with suspend=true: idle threads sleep
//
// Header-only, like ../common.hpp (whose parse_long and proc_status_kib the
// peers use too); Boost.Fiber and the standard library only, no csp.

#pragma once

#include "../common.hpp"

#include <boost/fiber/all.hpp>

#include <barrier>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {

// The scheduler a peer runs on, as the command line chose it.
struct FiberScheduler {
    std::string impl = "fiber-rr";  // RESULT's impl=: fiber-rr, fiber-ws or fiber-ws-suspend
    unsigned threads = 1;           // RESULT's workers=: 1 for rr
    bool work_stealing = false;     // ws or ws-suspend
    bool suspend = false;           // ws-suspend: idle threads sleep
};

struct FiberArgs {
    long count = 0;
    FiberScheduler sched;
};

// Parses  <prog> [count] [rr|ws|ws-suspend] [threads]:  count as
// bench::parse_count (default `default_count`, at least `min_count`), the
// scheduler (default rr) and, for ws and ws-suspend, the thread count
// (default: all cores; read with strtol, as a number prefix). With `rr_only`
// the program takes  <prog> [count] [rr]  and looks at nothing further. Bad
// arguments print the usage, e.g.
//   usage: <prog> [cycles>0] [rr|ws|ws-suspend] [threads>0]
// and exit with status 2.
inline FiberArgs parse_fiber_args(int argc, char** argv, long default_count, const char* what,
                                  long min_count = 1, bool rr_only = false) {
    auto usage = [&] {
        std::fprintf(stderr, "usage: %s [%s", argv[0], what);
        if (min_count == 1)
            std::fprintf(stderr, ">0]");
        else
            std::fprintf(stderr, ">=%ld]", min_count);
        std::fprintf(stderr, rr_only ? " [rr]\n" : " [rr|ws|ws-suspend] [threads>0]\n");
        std::exit(2);
    };

    FiberArgs a;
    a.count = default_count;
    if (argc > 1 && !parse_long(argv[1], min_count, a.count)) usage();
    const std::string sched = argc > 2 ? argv[2] : "rr";
    if (rr_only) {
        if (sched != "rr") usage();
        return a;
    }
    unsigned threads = std::thread::hardware_concurrency();
    if (threads == 0) threads = 1;
    if (argc > 3) {
        long t = std::strtol(argv[3], nullptr, 10);
        if (t <= 0) usage();
        threads = static_cast<unsigned>(t);
    }
    if (sched == "rr") return a;  // the defaults: fiber-rr on one thread
    if (sched != "ws" && sched != "ws-suspend") usage();
    a.sched.impl = sched == "ws" ? "fiber-ws" : "fiber-ws-suspend";
    a.sched.threads = threads;
    a.sched.work_stealing = true;
    a.sched.suspend = sched == "ws-suspend";
    return a;
}

// work_stealing on the calling thread and `threads - 1` helper threads, from
// construction to destruction. Boost's pattern (examples/work_sharing.cpp):
// every thread installs the scheduler, then the helpers park on a fiber
// condition variable until the destructor says done; while parked their
// schedulers steal work. The calling thread keeps work_stealing afterwards.
class WorkStealingPool {
public:
    WorkStealingPool(unsigned threads, bool suspend)
        : threads_(threads), suspend_(suspend), ready_(static_cast<std::ptrdiff_t>(threads)) {
        for (unsigned i = 1; i < threads_; ++i) {
            helpers_.emplace_back([this] {
                boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads_,
                                                                                           suspend_);
                ready_.arrive_and_wait();
                std::unique_lock<boost::fibers::mutex> lk(mtx_);
                cv_.wait(lk, [this] { return done_; });
            });
        }
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads_, suspend_);
        ready_.arrive_and_wait();
    }

    ~WorkStealingPool() {
        {
            std::unique_lock<boost::fibers::mutex> lk(mtx_);
            done_ = true;
        }
        cv_.notify_all();
        for (auto& t : helpers_) t.join();
    }

    WorkStealingPool(const WorkStealingPool&) = delete;
    WorkStealingPool& operator=(const WorkStealingPool&) = delete;

private:
    const unsigned threads_;
    const bool suspend_;
    std::barrier<> ready_;
    boost::fibers::mutex mtx_;
    boost::fibers::condition_variable_any cv_;
    bool done_ = false;
    std::vector<std::thread> helpers_;
};

// Installs the chosen scheduler on the calling thread and returns body():
// round_robin alone, or work_stealing with a pool whose helpers end after
// body() has returned. body() starts its fibers on the calling thread's
// scheduler; under work_stealing other threads may steal them.
template <class Body>
auto run_on_scheduler(const FiberScheduler& s, Body&& body) -> decltype(body()) {
    if (!s.work_stealing) {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
        return body();
    }
    WorkStealingPool pool(s.threads, s.suspend);
    return body();
}

}  // namespace bench
