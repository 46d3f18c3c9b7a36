// pipeline with oneTBB: the peer of bench/pipeline.cpp, same items, stages, sum.
//
// tbb::parallel_pipeline over filters source -> f1 -> f2 -> f3 -> f4 -> sink:
//   serial    every filter serial_in_order (the chain's shape)
//   parallel  source and sink serial_in_order, f1..f4 parallel (the farm's:
//             any thread may run any item through the middle filters)
// with 4 tokens per thread in flight, on `threads` threads
// (tbb::global_control). Figure: ns per item = the parallel_pipeline call /
// items.
//
// Usage: pipeline_tbb [items] [serial|parallel] [threads]
#include "../common.hpp"
#include "../pipeline_stages.hpp"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    using bench::stages::Item;
    const long items = bench::parse_count(argc, argv, 1'000'000, "items");
    const std::string mode = argc > 2 ? argv[2] : "serial";
    unsigned threads = std::thread::hardware_concurrency();
    if (argc > 3) threads = static_cast<unsigned>(std::atoi(argv[3]));
    if ((mode != "serial" && mode != "parallel") || threads == 0) {
        std::fprintf(stderr, "usage: %s [items>0] [serial|parallel] [threads>0]\n", argv[0]);
        return 2;
    }
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    const auto middle = mode == "serial" ? tbb::filter_mode::serial_in_order : tbb::filter_mode::parallel;
    using namespace bench::stages;
    long next = 0;
    Item sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    tbb::parallel_pipeline(
        4 * threads,
        tbb::make_filter<void, Item>(tbb::filter_mode::serial_in_order,
                                     [&](tbb::flow_control& fc) -> Item {
                                         if (next == items) {
                                             fc.stop();
                                             return 0;
                                         }
                                         return static_cast<Item>(next++);
                                     }) &
            tbb::make_filter<Item, Item>(middle, [](Item x) { return f1(x); }) &
            tbb::make_filter<Item, Item>(middle, [](Item x) { return f2(x); }) &
            tbb::make_filter<Item, Item>(middle, [](Item x) { return f3(x); }) &
            tbb::make_filter<Item, Item>(middle, [](Item x) { return f4(x); }) &
            tbb::make_filter<Item, void>(tbb::filter_mode::serial_in_order, [&](Item x) { sum += x; }));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (sum != expected_sum(items)) {
        std::fprintf(stderr, "pipeline_tbb: the sink's sum is wrong\n");
        return 1;
    }
    std::printf("RESULT name=pipeline impl=tbb-%s workers=%u ns_per_op=%.2f items_per_s=%.0f items=%ld seconds=%.4f\n",
                mode.c_str(), threads, seconds * 1e9 / static_cast<double>(items), static_cast<double>(items) / seconds,
                items, seconds);
    return 0;
}
