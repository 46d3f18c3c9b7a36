// buffered in Boost.Fiber: the peer of bench/buffered.cpp, same shape, same count.
//
// 100 writer fibers push into one boost::fibers::buffered_channel<int64_t>
// of capacity 64 (Boost requires a power of two), one reader fiber pops.
// Writer w pushes w*per .. w*per+per-1 (per = messages/100); the reader pops
// every message and checks the count and that they sum to exactly
// messages(messages-1)/2. Figure: ns per message = the reader's timed loop
// (every message, from its first pop to its last) / messages.
//
// Usage: buffered_fiber [messages] [rr|ws|ws-suspend] [threads]
//   rr          round_robin scheduler, one thread (the default)
//   ws          work_stealing over `threads` threads (default: all cores),
//               Boost's default: idle threads spin looking for work
//   ws-suspend  work_stealing with suspend=true: idle threads sleep
// Prints one line: RESULT name=buffered impl=fiber-rr|fiber-ws|fiber-ws-suspend workers=W ns_per_op=X ...

#include <boost/fiber/all.hpp>

#include "fiber_common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using Value = std::int64_t;
using Chan = boost::fibers::buffered_channel<Value>;
using boost::fibers::channel_op_status;

constexpr long kDefaultMessages = 10'000'000;
constexpr long kWriters = 100;
constexpr std::size_t kCapacity = 64;

struct ReaderResult {
    double seconds = 0;
    Value sum = 0;
    long received = 0;
};

void writer(Chan& out, Value first, long count) {
    for (Value x = first, end = first + count; x < end; ++x) {
        if (out.push(x) != channel_op_status::success) break;
    }
}

void reader(Chan& in, long messages, ReaderResult& r) {
    Value sum = 0, x = 0;
    long received = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < messages; ++i) {
        if (in.pop(x) != channel_op_status::success) break;
        sum += x;
        ++received;
    }
    auto t1 = std::chrono::steady_clock::now();
    in.close();
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.sum = sum;
    r.received = received;
}

// Runs the writers and the reader on the calling thread's scheduler; the
// fibers may be stolen by other threads when that scheduler is work_stealing.
ReaderResult run_network(long per) {
    Chan ch{kCapacity};
    ReaderResult r;
    std::vector<boost::fibers::fiber> fibers;
    for (long w = 0; w < kWriters; ++w) fibers.emplace_back(writer, std::ref(ch), Value{w * per}, per);
    fibers.emplace_back(reader, std::ref(ch), per * kWriters, std::ref(r));
    for (auto& f : fibers) f.join();
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const bench::FiberArgs args = bench::parse_fiber_args(argc, argv, kDefaultMessages, "messages", kWriters);
    const long per = args.count / kWriters;
    const long messages = per * kWriters;

    const ReaderResult r = bench::run_on_scheduler(args.sched, [&] { return run_network(per); });

    const Value expect = static_cast<Value>(messages) * (static_cast<Value>(messages) - 1) / 2;
    if (r.received != messages || r.sum != expect) {
        std::fprintf(stderr, "buffered_fiber: reader got %ld values summing to %lld, expected %ld summing to %lld\n",
                     r.received, static_cast<long long>(r.sum), messages, static_cast<long long>(expect));
        return 1;
    }
    const double ns_per_op = r.seconds * 1e9 / static_cast<double>(messages);
    std::printf("RESULT name=buffered impl=%s workers=%u ns_per_op=%.2f messages=%ld writers=%ld "
                "capacity=%zu seconds=%.4f\n",
                args.sched.impl.c_str(), args.sched.threads, ns_per_op, messages, kWriters, kCapacity,
                r.seconds);
    std::fflush(stdout);
    return 0;
}
