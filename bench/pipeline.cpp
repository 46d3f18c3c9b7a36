// pipeline: items through four cheap stages, as a chain and as a farm.
//
//   chain:  source -> f1 -> f2 -> f3 -> f4 -> sink    (csp::pipeline, one
//           csp::stage per function, unbuffered channels between them)
//   farm:   source -> (f4.f3.f2.f1) * 4 -> sink       (four copies of one
//           stage on shared channels: csp::stage(all4) * 4)
//
// The source writes the items 0..items-1; each stage is a few arithmetic
// operations (pipeline_stages.hpp); the sink adds up what reaches it, and the
// program checks the sum against a sequential computation (done after the
// timing). Figure: ns per item = the whole csp::pipeline call (the
// processes' start to the sink's result) / items; items_per_s its inverse.
//
// Usage: pipeline [items] [chain|farm]   (worker count: CSP_THREADS)
// Prints one line: RESULT name=pipeline impl=csp-chain|csp-farm workers=W ns_per_op=X ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"
#include "pipeline_stages.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

namespace {

using bench::stages::Item;

constexpr long kDefaultItems = 1'000'000;

}  // namespace

int main(int argc, char** argv) {
    const long items = bench::parse_count(argc, argv, kDefaultItems, "items");
    const std::string shape = argc > 2 ? argv[2] : "chain";
    if (shape != "chain" && shape != "farm") {
        std::fprintf(stderr, "usage: %s [items>0] [chain|farm]\n", argv[0]);
        return 2;
    }
    try {
        auto source = csp::process("source", [items](csp::ChannelOut<Item> out) {
            for (long i = 0; i < items; ++i) out(static_cast<Item>(i));
        });
        auto sink = csp::process("sink", [](csp::ChannelIn<Item> in) {
            Item sum = 0;
            try {
                for (;;) sum += in();
            } catch (const csp::ChannelRetireException&) {
            }
            return sum;
        });
        using namespace bench::stages;
        const auto t0 = std::chrono::steady_clock::now();
        const Item sum = shape == "chain"
                             ? csp::pipeline(source, csp::stage(f1), csp::stage(f2), csp::stage(f3), csp::stage(f4), sink)
                             : csp::pipeline(source, csp::stage(all4) * 4, sink);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (sum != expected_sum(items)) {
            std::fprintf(stderr, "pipeline: the sink's sum is wrong (items lost, doubled or corrupted)\n");
            return 1;
        }
        std::printf("RESULT name=pipeline impl=csp-%s workers=%u ns_per_op=%.2f items_per_s=%.0f items=%ld "
                    "seconds=%.4f\n",
                    shape.c_str(), bench::worker_count(), seconds * 1e9 / static_cast<double>(items),
                    static_cast<double>(items) / seconds, items, seconds);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pipeline: %s\n", e.what());
        return 1;
    }
    return 0;
}
