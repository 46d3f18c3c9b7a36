// pingpong: two processes bounce one value back and forth.
//
//        +------+  ping  +------+
//        | Ping | -----> | Pong |
//        |      | <----- |      |
//        +------+  pong  +------+
//
// Both channels are unbuffered. Ping writes 0, 1, 2, ... on `ping` and reads
// each value back from `pong` (Pong echoes what it reads); one round trip is
// two one-way messages, so the figure reported is Ping's timed loop divided
// by 2 * round trips, after a warm-up of round trips/10. Ping checks every
// echo and then poisons `ping`; Pong, blocked reading it, ends by the poison.
//
// Placement: with CSP_THREADS=1 both processes share the one worker. With
// more workers the public API has no way to put them on different workers,
// so where they run (the same worker or two) is up to the scheduler.
//
// Usage: pingpong [round_trips]    (worker count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=pingpong impl=csp workers=W ns_per_op=X ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>

namespace {

using Value = std::int64_t;

constexpr long kDefaultRoundTrips = 5'000'000;

struct PingResult {
    double seconds = 0;      // timed loop only
    long round_trips = 0;    // timed round trips
    bool values_ok = false;  // every echo was the value sent
};

auto Ping = csp::process([](csp::ChannelOut<Value> out, csp::ChannelIn<Value> in, long warmup,
                            long round_trips) {
    PingResult r;
    bool ok = true;
    Value x = 0;
    for (long i = 0; i < warmup; ++i, ++x) {
        out(x);
        ok &= (in() == x);
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < round_trips; ++i, ++x) {
        out(x);
        ok &= (in() == x);
    }
    auto t1 = std::chrono::steady_clock::now();
    out.poison();
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.round_trips = round_trips;
    r.values_ok = ok;
    return r;
});

auto Pong = csp::process([](csp::ChannelIn<Value> in, csp::ChannelOut<Value> out) {
    for (;;) out(in());
});

}  // namespace

int main(int argc, char** argv) {
    const long round_trips = bench::parse_count(argc, argv, kDefaultRoundTrips, "round_trips");
    const long warmup = round_trips / 10 + 1;

    try {
        csp::Channel<Value> ping{"ping"}, pong{"pong"};
        auto results = csp::Parallel(Ping(ping.writer(), pong.reader(), warmup, round_trips),
                                     Pong(ping.reader(), pong.writer()));
        const PingResult& r = std::get<0>(results);
        if (!r.values_ok) {
            std::fprintf(stderr, "pingpong: ping read a wrong echo\n");
            return 1;
        }
        const double ns_per_op = r.seconds * 1e9 / (2.0 * static_cast<double>(r.round_trips));
        std::printf("RESULT name=pingpong impl=csp workers=%u ns_per_op=%.2f round_trips=%ld seconds=%.4f\n",
                    bench::worker_count(), ns_per_op, r.round_trips, r.seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pingpong: %s\n", e.what());
        return 1;
    }
    return 0;
}
