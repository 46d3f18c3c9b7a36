// spawn: a million processes alive at once, each one message long, twice.
//
//   Sender(0) ---+
//   Sender(1) ---+
//      ...       +--- all --->  Collector
//   Sender(N-1) -+
//
// N senders and one collector run in one csp::Parallel over a
// std::vector<csp::Process<>>. Every sender holds its own writer end of one
// shared unbuffered channel and writes its index once; the collector reads N
// values and checks that they sum to exactly N(N-1)/2. A sender blocks in its
// write until the collector takes it, so the senders pile up alive at once;
// `max_alive` (the most senders between their start and the end of their
// write, counted with an atomic) shows how many actually were.
//
// The program runs that round twice, the same both times (a fresh channel and
// N fresh processes): round 1 is cold, round 2 warm, reusing whatever the
// runtime pools (fiber stacks). Why: on a VM (Firecracker) the first touch of a
// guest page never used before costs 15-30 us of host-side backing, so the cold
// round mostly counts the fresh pages touched; the warm round measures
// creating, scheduling and ending processes.
//
// Figures: ns per process (ns_per_op) = round 2's wall time of making the N
// processes and running the whole Parallel, / N (`parallel_seconds`: its
// Parallel alone); `cold_ns` = the same for round 1; rss_kib_per_process =
// (peak RSS after both rounds (VmHWM) - RSS just before round 1 (VmRSS)) / N,
// in KiB, both from /proc/self/status (both rounds have N alive at once, so the
// peak over both is the footprint of N processes). `max_alive` is the smaller
// of the two rounds' (`cold_max_alive`, `warm_max_alive`: each round's). Both
// rounds' sums are checked exactly.
//
// Usage: spawn [N]    (worker count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=spawn impl=csp workers=W ns_per_op=X rss_kib_per_process=Y cold_ns=Z ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace {

using Value = std::int64_t;

constexpr long kDefaultProcesses = 1'000'000;

// How many senders are alive at once: `now` counts them, `peak` its maximum.
struct Alive {
    std::atomic<long> now{0};
    std::atomic<long> peak{0};
};

struct CollectorResult {
    Value sum = 0;
    long received = 0;
};

auto Sender = csp::process([](csp::ChannelOut<Value> out, Value index, Alive* alive) {
    long n = alive->now.fetch_add(1, std::memory_order_relaxed) + 1;
    long p = alive->peak.load(std::memory_order_relaxed);
    while (n > p && !alive->peak.compare_exchange_weak(p, n, std::memory_order_relaxed)) {
    }
    out(index);
    alive->now.fetch_sub(1, std::memory_order_relaxed);
});

// The collector reports through `result`: in one vector with the senders it
// is a csp::Process<>, whose result the Parallel discards.
auto Collector = csp::process([](csp::ChannelIn<Value> in, long n, CollectorResult* result) {
    Value sum = 0;
    for (long i = 0; i < n; ++i) sum += in();
    result->sum = sum;
    result->received = n;
});

// One round's figures; `ok` false (with a message on stderr) when the
// collector's count or sum is wrong.
struct Round {
    double seconds = 0;           // making the N + 1 processes and running the Parallel
    double parallel_seconds = 0;  // the Parallel alone
    long max_alive = 0;
    bool ok = false;
};

// One round: a fresh channel, N senders and a collector, one Parallel.
Round run_round(long n, const char* which) {
    csp::Channel<Value> all{"all"};
    Alive alive;
    CollectorResult result;

    auto t0 = std::chrono::steady_clock::now();
    std::vector<csp::Process<>> procs;
    procs.reserve(static_cast<std::size_t>(n) + 1);
    for (long i = 0; i < n; ++i) procs.push_back(Sender(all.writer(), Value{i}, &alive));
    procs.push_back(Collector(all.reader(), n, &result));
    auto t1 = std::chrono::steady_clock::now();
    csp::Parallel(std::move(procs));
    auto t2 = std::chrono::steady_clock::now();

    Round r;
    r.seconds = std::chrono::duration<double>(t2 - t0).count();
    r.parallel_seconds = std::chrono::duration<double>(t2 - t1).count();
    r.max_alive = alive.peak.load();
    const Value expect = static_cast<Value>(n) * (static_cast<Value>(n) - 1) / 2;
    r.ok = result.received == n && result.sum == expect;
    if (!r.ok) {
        std::fprintf(stderr,
                     "spawn: %s round: collector got %ld values summing to %lld, expected %ld summing to %lld\n",
                     which, result.received, static_cast<long long>(result.sum), n,
                     static_cast<long long>(expect));
    }
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const long n = bench::parse_count(argc, argv, kDefaultProcesses, "processes");

    try {
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
        std::printf("RESULT name=spawn impl=csp workers=%u ns_per_op=%.2f rss_kib_per_process=%.3f "
                    "cold_ns=%.2f processes=%ld max_alive=%ld cold_max_alive=%ld warm_max_alive=%ld "
                    "seconds=%.4f parallel_seconds=%.4f cold_seconds=%.4f cold_parallel_seconds=%.4f "
                    "rss_before_kib=%ld rss_peak_kib=%ld\n",
                    bench::worker_count(), ns_per_op, rss_kib, cold_ns, n, max_alive, cold.max_alive,
                    warm.max_alive, warm.seconds, warm.parallel_seconds, cold.seconds,
                    cold.parallel_seconds, rss_before, rss_peak);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "spawn: %s\n", e.what());
        return 1;
    }
    return 0;
}
