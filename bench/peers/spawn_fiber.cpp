// spawn in Boost.Fiber: the peer of bench/spawn.cpp, same shape, same count, twice.
//
// N sender fibers and one collector fiber on the round_robin scheduler (one
// thread). Every sender pushes its index once into one shared
// boost::fibers::unbuffered_channel; the collector pops N values and checks
// that they sum to exactly N(N-1)/2. A sender blocks in its push until the
// collector takes it, so the senders pile up alive at once; `max_alive` (the
// most senders between their start and the end of their push) shows how many
// actually were. Fibers get Boost's default stack (fixedsize_stack,
// stack_traits::default_size(): 128 KiB from malloc; untouched pages cost no
// memory).
//
// The program runs that round twice, the same both times (a fresh channel and
// N + 1 fresh fibers): round 1 is cold, round 2 warm, reusing whatever is left
// to reuse (Boost.Fiber pools nothing itself; freed stacks go back to malloc,
// which may hand them out again). Why: on a VM (Firecracker) the first touch of
// a guest page never used before costs 15-30 us of host-side backing, so the
// cold round mostly counts the fresh pages touched; the warm round measures
// creating, scheduling and ending fibers.
//
// Figures: ns per process (ns_per_op) = round 2's wall time of creating the
// N + 1 fibers and joining them all, / N; `cold_ns` = the same for round 1;
// rss_kib_per_process = (peak RSS after both rounds (VmHWM) - RSS just before
// round 1 (VmRSS)) / N, in KiB, from /proc/self/status (both rounds have N
// alive at once, so the peak over both is the footprint of N fibers).
// `max_alive` is the smaller of the two rounds' (`cold_max_alive`,
// `warm_max_alive`: each round's). Both rounds' sums are checked exactly.
//
// Usage: spawn_fiber [N] [rr]    (rr: round_robin, one thread; the only choice)
// Prints one line: RESULT name=spawn impl=fiber-rr workers=1 ns_per_op=X rss_kib_per_process=Y cold_ns=Z ...

#include <boost/fiber/all.hpp>

#include "fiber_common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using Value = std::int64_t;
using Chan = boost::fibers::unbuffered_channel<Value>;
using boost::fibers::channel_op_status;

constexpr long kDefaultProcesses = 1'000'000;

// How many senders are alive at once (one thread: plain counters).
struct Alive {
    long now = 0;
    long peak = 0;
};

struct CollectorResult {
    Value sum = 0;
    long received = 0;
};

void sender(Chan& out, Value index, Alive& alive) {
    if (++alive.now > alive.peak) alive.peak = alive.now;
    out.push(index);
    --alive.now;
}

void collector(Chan& in, long n, CollectorResult& r) {
    Value sum = 0, x = 0;
    long received = 0;
    for (long i = 0; i < n; ++i) {
        if (in.pop(x) != channel_op_status::success) break;
        sum += x;
        ++received;
    }
    r.sum = sum;
    r.received = received;
}

// One round's figures; `ok` false (with a message on stderr) when the
// collector's count or sum is wrong.
struct Round {
    double seconds = 0;  // creating the N + 1 fibers and joining them all
    long max_alive = 0;
    bool ok = false;
};

// One round: a fresh channel, N senders and a collector, all joined.
Round run_round(long n, const char* which) {
    Chan all;
    Alive alive;
    CollectorResult r;

    auto t0 = std::chrono::steady_clock::now();
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(static_cast<std::size_t>(n) + 1);
    for (long i = 0; i < n; ++i) fibers.emplace_back(sender, std::ref(all), Value{i}, std::ref(alive));
    fibers.emplace_back(collector, std::ref(all), n, std::ref(r));
    for (auto& f : fibers) f.join();
    auto t1 = std::chrono::steady_clock::now();

    Round out;
    out.seconds = std::chrono::duration<double>(t1 - t0).count();
    out.max_alive = alive.peak;
    const Value expect = static_cast<Value>(n) * (static_cast<Value>(n) - 1) / 2;
    out.ok = r.received == n && r.sum == expect;
    if (!out.ok) {
        std::fprintf(stderr,
                     "spawn_fiber: %s round: collector got %ld values summing to %lld, expected %ld summing to %lld\n",
                     which, r.received, static_cast<long long>(r.sum), n, static_cast<long long>(expect));
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const long n =
        bench::parse_fiber_args(argc, argv, kDefaultProcesses, "processes", 1, /*rr_only=*/true).count;
    boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();

    const long rss_before = bench::proc_status_kib("VmRSS:");
    const Round cold = run_round(n, "cold");
    if (!cold.ok) return 1;
    const Round warm = run_round(n, "warm");
    if (!warm.ok) return 1;
    const long rss_peak = bench::proc_status_kib("VmHWM:");

    const double ns_per_op = warm.seconds * 1e9 / static_cast<double>(n);
    const double cold_ns = cold.seconds * 1e9 / static_cast<double>(n);
    const double rss_kib = rss_before < 0 || rss_peak < 0
                               ? -1.0
                               : static_cast<double>(rss_peak - rss_before) / static_cast<double>(n);
    const long max_alive = cold.max_alive < warm.max_alive ? cold.max_alive : warm.max_alive;
    std::printf("RESULT name=spawn impl=fiber-rr workers=1 ns_per_op=%.2f rss_kib_per_process=%.3f "
                "cold_ns=%.2f processes=%ld max_alive=%ld cold_max_alive=%ld warm_max_alive=%ld "
                "seconds=%.4f cold_seconds=%.4f rss_before_kib=%ld rss_peak_kib=%ld\n",
                ns_per_op, rss_kib, cold_ns, n, max_alive, cold.max_alive, warm.max_alive, warm.seconds,
                cold.seconds, rss_before, rss_peak);
    std::fflush(stdout);
    return 0;
}
