// commstime.hpp: the four processes of commstime (see bench/commstime.cpp),
// shared by bench/commstime.cpp (fibers) and bench/mpi_commstime.cpp (MPI
// ranks). All four channels are unbuffered; Delta is the sequential delta.
#pragma once

#include <csp/csp.hpp>

#include <chrono>
#include <cstdint>

namespace bench::commstime {

using Value = std::int64_t;

struct ConsumerResult {
    double seconds = 0;      // timed loop only
    long cycles = 0;         // timed cycles
    bool values_ok = false;  // read exactly 0, 1, 2, ...
};

inline auto Prefix = csp::process([](Value first, csp::ChannelIn<Value> in, csp::ChannelOut<Value> out) {
    out(first);
    for (;;) out(in());
});

inline auto Delta = csp::process([](csp::ChannelIn<Value> in, csp::ChannelOut<Value> out1,
                             csp::ChannelOut<Value> out2) {
    for (;;) {
        Value x = in();
        out1(x);
        out2(x);
    }
});

inline auto Successor = csp::process([](csp::ChannelIn<Value> in, csp::ChannelOut<Value> out) {
    for (;;) out(in() + 1);
});

inline auto Consumer = csp::process([](csp::ChannelIn<Value> in, long warmup, long cycles) {
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

}  // namespace bench::commstime
