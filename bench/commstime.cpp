// commstime: the classic CSP context-switch benchmark (occam, JCSP, PyCSP).
//
//        +--------+   a    +-------+   d    +----------+
//   +--> | Prefix | -----> | Delta | -----> | Consumer |
//   |    |  (0)   |        | (seq) |        +----------+
//   |    +--------+        +-------+
//   |  c                       | b
//   |    +-----------+         |
//   +----| Successor | <-------+
//        +-----------+
//
// All four channels are unbuffered. Delta is the sequential delta: it writes
// to the successor, then to the consumer (PyCSP's Delta2, JCSP's SeqDelta2Int).
// One cycle is four communications (a, b, c, d), so the figure reported is
// the consumer's timed loop divided by 4 * cycles. The consumer checks that
// it reads 0, 1, 2, ... and then poisons its channel; the poison spreads
// through Delta's ends to the rest of the ring.
//
// Usage: commstime [cycles]    (worker count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=commstime impl=csp workers=W ns_per_op=X ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

namespace {

using Value = std::int64_t;

constexpr long kDefaultCycles = 1'000'000;

struct ConsumerResult {
    double seconds = 0;      // timed loop only
    long cycles = 0;         // timed cycles
    bool values_ok = false;  // read exactly 0, 1, 2, ...
};

auto Prefix = csp::process([](Value first, csp::ChannelIn<Value> in, csp::ChannelOut<Value> out) {
    out(first);
    for (;;) out(in());
});

auto Delta = csp::process([](csp::ChannelIn<Value> in, csp::ChannelOut<Value> out1,
                             csp::ChannelOut<Value> out2) {
    for (;;) {
        Value x = in();
        out1(x);
        out2(x);
    }
});

auto Successor = csp::process([](csp::ChannelIn<Value> in, csp::ChannelOut<Value> out) {
    for (;;) out(in() + 1);
});

auto Consumer = csp::process([](csp::ChannelIn<Value> in, long warmup, long cycles) {
    ConsumerResult r;
    bool ok = true;
    Value expect = 0;
    for (long i = 0; i < warmup; ++i) ok &= (in() == expect++);
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < cycles; ++i) ok &= (in() == expect++);
    auto t1 = std::chrono::steady_clock::now();
    in.poison();
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.cycles = cycles;
    r.values_ok = ok;
    return r;
});

}  // namespace

int main(int argc, char** argv) {
    const long cycles = bench::parse_count(argc, argv, kDefaultCycles, "cycles");
    const long warmup = cycles / 10 + 1;

    try {
        csp::Channel<Value> a{"a"}, b{"b"}, c{"c"}, d{"d"};
        auto results = csp::Parallel(Prefix(Value{0}, c.reader(), a.writer()),
                                     Delta(a.reader(), b.writer(), d.writer()),
                                     Successor(b.reader(), c.writer()),
                                     Consumer(d.reader(), warmup, cycles));
        const ConsumerResult& r = std::get<3>(results);
        if (!r.values_ok) {
            std::fprintf(stderr, "commstime: consumer read wrong values\n");
            return 1;
        }
        const double ns_per_op = r.seconds * 1e9 / (4.0 * static_cast<double>(r.cycles));
        std::printf("RESULT name=commstime impl=csp workers=%u ns_per_op=%.2f cycles=%ld seconds=%.4f\n",
                    bench::worker_count(), ns_per_op, r.cycles, r.seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "commstime: %s\n", e.what());
        return 1;
    }
    return 0;
}
