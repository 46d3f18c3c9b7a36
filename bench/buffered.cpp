// buffered: many writers, one reader, one buffered channel.
//
//   Writer(0)  ---+
//   Writer(1)  ---+   buffer(64)
//      ...        +-------------->  Reader
//   Writer(99) ---+
//
// One channel made with csp::buffer(64), shared by 100 writer processes (each
// with its own writer end) and read by one reader. Writer w writes the values
// w*per, w*per+1, ..., w*per+per-1 (per = messages/100), so together they write
// every value in 0 .. messages-1 once; the reader reads them all and checks
// the count and that they sum to exactly messages(messages-1)/2. Figure: ns
// per message = the reader's timed loop (every message, from its first read
// to its last) / messages. No warm-up: the writers end when their share is
// written.
//
// Usage: buffered [messages]    (rounded down to a multiple of 100; worker
//                                count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=buffered impl=csp workers=W ns_per_op=X ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

namespace {

using Value = std::int64_t;

constexpr long kDefaultMessages = 10'000'000;
constexpr long kWriters = 100;
constexpr std::size_t kCapacity = 64;

struct ReaderResult {
    double seconds = 0;  // timed loop only
    Value sum = 0;
    long received = 0;
};

auto Writer = csp::process([](csp::ChannelOut<Value> out, Value first, long count) {
    for (Value x = first, end = first + count; x < end; ++x) out(x);
});

// The reader reports through `result`: in one vector with the writers it is
// a csp::Process<>, whose result the Parallel discards.
auto Reader = csp::process([](csp::ChannelIn<Value> in, long messages, ReaderResult* result) {
    Value sum = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < messages; ++i) sum += in();
    auto t1 = std::chrono::steady_clock::now();
    result->seconds = std::chrono::duration<double>(t1 - t0).count();
    result->sum = sum;
    result->received = messages;
});

}  // namespace

int main(int argc, char** argv) {
    const long requested = bench::parse_count(argc, argv, kDefaultMessages, "messages", kWriters);
    const long per = requested / kWriters;
    const long messages = per * kWriters;

    try {
        csp::Channel<Value> ch{"buffered", csp::buffer(kCapacity)};
        ReaderResult r;
        std::vector<csp::Process<>> procs;
        for (long w = 0; w < kWriters; ++w) procs.push_back(Writer(ch.writer(), Value{w * per}, per));
        procs.push_back(Reader(ch.reader(), messages, &r));
        csp::Parallel(std::move(procs));

        const Value expect = static_cast<Value>(messages) * (static_cast<Value>(messages) - 1) / 2;
        if (r.received != messages || r.sum != expect) {
            std::fprintf(stderr, "buffered: reader got %ld values summing to %lld, expected %ld summing to %lld\n",
                         r.received, static_cast<long long>(r.sum), messages, static_cast<long long>(expect));
            return 1;
        }
        const double ns_per_op = r.seconds * 1e9 / static_cast<double>(messages);
        std::printf("RESULT name=buffered impl=csp workers=%u ns_per_op=%.2f messages=%ld writers=%ld "
                    "capacity=%zu seconds=%.4f\n",
                    bench::worker_count(), ns_per_op, messages, kWriters, kCapacity, r.seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "buffered: %s\n", e.what());
        return 1;
    }
    return 0;
}
