// floor: what one commstime communication cannot go below on this machine.
//
// A communication between two fibers of one worker is, at the least, one
// switch from the process that blocks to the one that can go on, and the
// channel's lock taken and released by each side (an any-to-any channel is
// shared state: each side needs one atomic read-modify-write to touch it).
// This program times those parts alone, in tight loops, with nothing else:
//   switch   one Boost.Context switch (boost::context::fiber::resume, two
//            fibers bouncing), ns per switch
//   lock     an uncontended spin lock taken (atomic exchange) and released
//            (a release store), ns per pair
//   cas      one uncontended compare-and-swap, ns
// and prints floor_ns = switch + 2 x lock, the part of csp's ns per
// communication that no bookkeeping can remove.
//
// Usage: floor [iterations]
// Prints: RESULT name=floor impl=raw workers=1 ns_per_op=<floor> switch_ns=.. lock_ns=.. cas_ns=..
#include <boost/context/fiber.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace ctx = boost::context;

namespace {

using Clock = std::chrono::steady_clock;

double ns_since(Clock::time_point t0, long n) {
    return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / static_cast<double>(n);
}

double time_switch(long n) {
    long count = 0;
    ctx::fiber other{[&count, n](ctx::fiber&& back) {
        while (count < n) {
            ++count;
            back = std::move(back).resume();
        }
        return std::move(back);
    }};
    const auto t0 = Clock::now();
    long switches = 0;
    while (other) {
        other = std::move(other).resume();
        switches += 2;  // there and back
    }
    return ns_since(t0, switches);
}

double time_lock(long n) {
    std::atomic<bool> locked{false};
    const auto t0 = Clock::now();
    for (long i = 0; i < n; ++i) {
        while (locked.exchange(true, std::memory_order_acquire)) {
        }
        asm volatile("" ::: "memory");
        locked.store(false, std::memory_order_release);
    }
    return ns_since(t0, n);
}

double time_cas(long n) {
    std::atomic<std::uint64_t> word{0};
    const auto t0 = Clock::now();
    for (long i = 0; i < n; ++i) {
        std::uint64_t expected = static_cast<std::uint64_t>(i);
        word.compare_exchange_strong(expected, expected + 1, std::memory_order_acq_rel);
    }
    return ns_since(t0, n);
}

}  // namespace

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 20'000'000;
    if (n <= 0) {
        std::fprintf(stderr, "usage: %s [iterations>0]\n", argv[0]);
        return 2;
    }
    // Warm up, then keep the best of three (the least disturbed by others).
    time_switch(n / 10), time_lock(n / 10), time_cas(n / 10);
    double sw = 1e9, lk = 1e9, cas = 1e9;
    for (int round = 0; round < 3; ++round) {
        sw = std::min(sw, time_switch(n));
        lk = std::min(lk, time_lock(n));
        cas = std::min(cas, time_cas(n));
    }
    std::printf("RESULT name=floor impl=raw workers=1 ns_per_op=%.2f switch_ns=%.2f lock_ns=%.2f cas_ns=%.2f\n",
                sw + 2 * lk, sw, lk, cas);
    return 0;
}
