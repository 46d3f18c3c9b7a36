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

#include "fiber_common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>

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

}  // namespace

int main(int argc, char** argv) {
    const bench::FiberArgs args = bench::parse_fiber_args(argc, argv, kDefaultRoundTrips, "round_trips");
    const long round_trips = args.count;
    const long warmup = round_trips / 10 + 1;

    const PingResult r = bench::run_on_scheduler(args.sched, [&] { return run_pair(warmup, round_trips); });

    if (!r.values_ok) {
        std::fprintf(stderr, "pingpong_fiber: ping read a wrong echo\n");
        return 1;
    }
    const double ns_per_op = r.seconds * 1e9 / (2.0 * static_cast<double>(round_trips));
    std::printf("RESULT name=pingpong impl=%s workers=%u ns_per_op=%.2f round_trips=%ld seconds=%.4f\n",
                args.sched.impl.c_str(), args.sched.threads, ns_per_op, round_trips, r.seconds);
    std::fflush(stdout);
    return 0;
}
