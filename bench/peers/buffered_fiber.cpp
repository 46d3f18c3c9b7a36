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

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr, "usage: %s [messages>=%ld] [rr|ws|ws-suspend] [threads>0]\n", argv0, kWriters);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    long requested = kDefaultMessages;
    if (argc > 1) {
        char* end = nullptr;
        requested = std::strtol(argv[1], &end, 10);
        if (end == argv[1] || *end != '\0' || requested < kWriters) usage(argv[0]);
    }
    const long per = requested / kWriters;
    const long messages = per * kWriters;
    std::string sched = argc > 2 ? argv[2] : "rr";
    unsigned threads = std::thread::hardware_concurrency();
    if (threads == 0) threads = 1;
    if (argc > 3) {
        long t = std::strtol(argv[3], nullptr, 10);
        if (t <= 0) usage(argv[0]);
        threads = static_cast<unsigned>(t);
    }

    ReaderResult r;
    std::string impl;
    if (sched == "rr") {
        impl = "fiber-rr";
        threads = 1;
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
        r = run_network(per);
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
        r = run_network(per);
        {
            std::unique_lock<boost::fibers::mutex> lk(mtx);
            done = true;
        }
        cv.notify_all();
        for (auto& t : helpers) t.join();
    } else {
        usage(argv[0]);
    }

    const Value expect = static_cast<Value>(messages) * (static_cast<Value>(messages) - 1) / 2;
    if (r.received != messages || r.sum != expect) {
        std::fprintf(stderr, "buffered_fiber: reader got %ld values summing to %lld, expected %ld summing to %lld\n",
                     r.received, static_cast<long long>(r.sum), messages, static_cast<long long>(expect));
        return 1;
    }
    const double ns_per_op = r.seconds * 1e9 / static_cast<double>(messages);
    std::printf("RESULT name=buffered impl=%s workers=%u ns_per_op=%.2f messages=%ld writers=%ld "
                "capacity=%zu seconds=%.4f\n",
                impl.c_str(), threads, ns_per_op, messages, kWriters, kCapacity, r.seconds);
    std::fflush(stdout);
    return 0;
}
