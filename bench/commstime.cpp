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
#include "commstime.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

namespace {

using namespace bench::commstime;

constexpr long kDefaultCycles = 1'000'000;

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
