// commstime in Boost.Fiber: the peer of bench/commstime.cpp, same network, same count.
//
// Prefix(0) -a-> Delta (sequential) -b-> Successor -c-> Prefix, Delta -d-> Consumer.
// All channels are boost::fibers::unbuffered_channel. One cycle is four
// communications; the figure is the consumer's timed loop / (4 * cycles).
// The consumer closes its channel when done; every process closes its own
// channels when an operation reports `closed`, so the ring shuts down.
//
// Usage: commstime_fiber [cycles] [rr|ws|ws-suspend] [threads]
//   rr          round_robin scheduler, one thread (the default)
//   ws          work_stealing over `threads` threads (default: all cores),
//               Boost's default: idle threads spin looking for work
//   ws-suspend  work_stealing with suspend=true: idle threads sleep
// Prints one line: RESULT name=commstime impl=fiber-rr|fiber-ws workers=W ns_per_op=X ...

#include <boost/fiber/all.hpp>

#include "fiber_common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>

namespace {

using Value = std::int64_t;
using Chan = boost::fibers::unbuffered_channel<Value>;
using boost::fibers::channel_op_status;

constexpr long kDefaultCycles = 1'000'000;

void prefix(Value first, Chan& in, Chan& out) {
    Value x = first;
    for (;;) {
        if (out.push(x) != channel_op_status::success) break;
        if (in.pop(x) != channel_op_status::success) break;
    }
    in.close();
    out.close();
}

void delta(Chan& in, Chan& out1, Chan& out2) {
    Value x;
    for (;;) {
        if (in.pop(x) != channel_op_status::success) break;
        if (out1.push(x) != channel_op_status::success) break;
        if (out2.push(x) != channel_op_status::success) break;
    }
    in.close();
    out1.close();
    out2.close();
}

void successor(Chan& in, Chan& out) {
    Value x;
    for (;;) {
        if (in.pop(x) != channel_op_status::success) break;
        if (out.push(x + 1) != channel_op_status::success) break;
    }
    in.close();
    out.close();
}

struct ConsumerResult {
    double seconds = 0;
    bool values_ok = false;
};

void consumer(Chan& in, long warmup, long cycles, ConsumerResult& r) {
    bool ok = true;
    Value expect = 0, x = 0;
    for (long i = 0; i < warmup; ++i) {
        ok &= in.pop(x) == channel_op_status::success && x == expect;
        ++expect;
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < cycles; ++i) {
        ok &= in.pop(x) == channel_op_status::success && x == expect;
        ++expect;
    }
    auto t1 = std::chrono::steady_clock::now();
    in.close();
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.values_ok = ok;
}

// Runs the network on the calling thread's scheduler; the fibers may be
// stolen by other threads when that scheduler is work_stealing.
ConsumerResult run_network(long warmup, long cycles) {
    Chan a, b, c, d;
    ConsumerResult r;
    boost::fibers::fiber fp(prefix, Value{0}, std::ref(c), std::ref(a));
    boost::fibers::fiber fd(delta, std::ref(a), std::ref(b), std::ref(d));
    boost::fibers::fiber fs(successor, std::ref(b), std::ref(c));
    boost::fibers::fiber fc(consumer, std::ref(d), warmup, cycles, std::ref(r));
    fc.join();
    fp.join();
    fd.join();
    fs.join();
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const bench::FiberArgs args = bench::parse_fiber_args(argc, argv, kDefaultCycles, "cycles");
    const long cycles = args.count;
    const long warmup = cycles / 10 + 1;

    const ConsumerResult r = bench::run_on_scheduler(args.sched, [&] { return run_network(warmup, cycles); });

    if (!r.values_ok) {
        std::fprintf(stderr, "commstime_fiber: consumer read wrong values\n");
        return 1;
    }
    const double ns_per_op = r.seconds * 1e9 / (4.0 * static_cast<double>(cycles));
    std::printf("RESULT name=commstime impl=%s workers=%u ns_per_op=%.2f cycles=%ld seconds=%.4f\n",
                args.sched.impl.c_str(), args.sched.threads, ns_per_op, cycles, r.seconds);
    std::fflush(stdout);
    return 0;
}
