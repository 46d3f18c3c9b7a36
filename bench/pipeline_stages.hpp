// bench/pipeline_stages.hpp: the four cheap stages of the pipeline benchmark
// (bench/pipeline.cpp, peers/pipeline_tbb.cpp; peers/pipeline.go has the
// same four in Go), and the sum a run must produce. Standard library only.
#pragma once

#include <cstdint>

namespace bench::stages {

using Item = std::uint64_t;

inline Item f1(Item x) { return x * 3 + 1; }
inline Item f2(Item x) { return x ^ (x >> 7); }
inline Item f3(Item x) { return x + 0x9E37; }
inline Item f4(Item x) { return (x * 5) & 0xFFFFFFFF; }
inline Item all4(Item x) { return f4(f3(f2(f1(x)))); }

// expected_sum: the sum (mod 2^64) of all4(i) for i in 0..items-1.
inline Item expected_sum(long items) {
    Item sum = 0;
    for (long i = 0; i < items; ++i) sum += all4(static_cast<Item>(i));
    return sum;
}

}  // namespace bench::stages
