// pingpong in Boost.Fiber: the peer of bench/pingpong.cpp, same shape, same count.
//
// Ping -ping-> Pong -pong-> Ping, both boost::fibers::unbuffered_channel.
// Ping writes 0, 1, 2, ... and checks each echo; one round trip is two one-way
// messages, so the figure is Ping's timed loop / (2 * round trips), after a
// warm-up of round trips/10. Ping closes `ping` when done; Pong sees `closed`
// and closes `pong`. Under work_stealing, where the two fibers run is up to
// the scheduler (either may be stolen by another thread).
//
// Usage: pingpong_fiber [round_trips] [rr|ws|ws-suspend] [threads]
//   rr          round_robin scheduler, one thread (the default)
//   ws          work_stealing over `threads` threads (default: all cores),
//               Boost's default: idle threads spin looking for work
//   ws-suspend  work_stealing with suspend=true: idle threads sleep
// Prints one line: RESULT name=pingpong impl=fiber-rr|fiber-ws|fiber-ws-suspend workers=W ns_per_op=X ...

#include <boost/fiber/all.hpp>

#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using Value = std::int64_t;
using Chan = boost::fibers::unbuffered_channel<Value>;
using boost::fibers::channel_op_status;

constexpr long kDefaultRoundTrips = 5'000'000;

struct PingResult {
    double seconds = 0;
    bool values_ok = false;
};

void ping(Chan& out, Chan& in, long warmup, long round_trips, PingResult& r) {
    bool ok = true;
    Value x = 0, y = 0;
    for (long i = 0; i < warmup; ++i, ++x) {
        ok &= out.push(x) == channel_op_status::success;
        ok &= in.pop(y) == channel_op_status::success && y == x;
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < round_trips; ++i, ++x) {
        ok &= out.push(x) == channel_op_status::success;
        ok &= in.pop(y) == channel_op_status::success && y == x;
    }
    auto t1 = std::chrono::steady_clock::now();
    out.close();
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.values_ok = ok;
}

void pong(Chan& in, Chan& out) {
    Value x;
    for (;;) {
        if (in.pop(x) != channel_op_status::success) break;
        if (out.push(x) != channel_op_status::success) break;
    }
    in.close();
    out.close();
}

// Runs the pair on the calling thread's scheduler; the fibers may be stolen
// by other threads when that scheduler is work_stealing.
PingResult run_pair(long warmup, long round_trips) {
    Chan to_pong, to_ping;
    PingResult r;
    boost::fibers::fiber fping(ping, std::ref(to_pong), std::ref(to_ping), warmup, round_trips, std::ref(r));
    boost::fibers::fiber fpong(pong, std::ref(to_pong), std::ref(to_ping));
    fping.join();
    fpong.join();
    return r;
}

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr, "usage: %s [round_trips>0] [rr|ws|ws-suspend] [threads>0]\n", argv0);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    long round_trips = kDefaultRoundTrips;
    if (argc > 1) {
        char* end = nullptr;
        round_trips = std::strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || round_trips <= 0) usage(argv[0]);
    }
    std::string sched = argc > 2 ? argv[2] : "rr";
    unsigned threads = std::thread::hardware_concurrency();
    if (threads == 0) threads = 1;
    if (argc > 3) {
        long t = std::strtol(argv[3], nullptr, 10);
        if (t <= 0) usage(argv[0]);
        threads = static_cast<unsigned>(t);
    }
    const long warmup = round_trips / 10 + 1;

    PingResult r;
    std::string impl;
    if (sched == "rr") {
        impl = "fiber-rr";
        threads = 1;
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
        r = run_pair(warmup, round_trips);
    } else if (sched == "ws" || sched == "ws-suspend") {
        impl = sched == "ws" ? "fiber-ws" : "fiber-ws-suspend";
        const bool suspend = sched == "ws-suspend";
        // Boost's pattern (examples/work_sharing.cpp), as in commstime_fiber.cpp:
        // every thread installs the scheduler, then the helpers park on a fiber
        // condition variable until main says done; while parked their
        // schedulers steal work.
        std::barrier ready(static_cast<std::ptrdiff_t>(threads));
        boost::fibers::mutex mtx;
        boost::fibers::condition_variable_any cv;
        bool done = false;
        std::vector<std::thread> helpers;
        for (unsigned i = 1; i < threads; ++i) {
            helpers.emplace_back([&] {
                boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads,
                                                                                           suspend);
                ready.arrive_and_wait();
                std::unique_lock<boost::fibers::mutex> lk(mtx);
                cv.wait(lk, [&] { return done; });
            });
        }
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(threads, suspend);
        ready.arrive_and_wait();
        r = run_pair(warmup, round_trips);
        {
            std::unique_lock<boost::fibers::mutex> lk(mtx);
            done = true;
        }
        cv.notify_all();
        for (auto& t : helpers) t.join();
    } else {
        usage(argv[0]);
    }

    if (!r.values_ok) {
        std::fprintf(stderr, "pingpong_fiber: ping read a wrong echo\n");
        return 1;
    }
    const double ns_per_op = r.seconds * 1e9 / (2.0 * static_cast<double>(round_trips));
    std::printf("RESULT name=pingpong impl=%s workers=%u ns_per_op=%.2f round_trips=%ld seconds=%.4f\n",
                impl.c_str(), threads, ns_per_op, round_trips, r.seconds);
    std::fflush(stdout);
    return 0;
}
