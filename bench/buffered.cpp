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
// The other buffer kinds, with the same writers and reader: an
// infinite_buffer() delivers every value (checked as above); an
// overwriting_buffer(64) or dropping_buffer(64) never makes a writer wait and
// drops values instead, so there the reader reads until the channel retires
// (when every writer has ended), and checks that it got at most `messages`
// values, each one that was written. Their writers never wait, so on one
// worker they run to their end before the reader reads at all: the figure
// there is the whole Parallel (writers and reader started to the last one
// ended) / messages written. Every kind also reports that figure as
// wall_ns_per_op, which is what the kinds are compared by.
//
// Usage: buffered [messages] [fifo|infinite|overwriting|dropping]
//        (messages rounded down to a multiple of 100; worker count:
//        CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=buffered impl=csp workers=W ns_per_op=X ...
// (impl=csp for fifo, csp-infinite, csp-overwriting or csp-dropping)
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
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

// LossyReader: for the kinds that drop values: reads until the channel
// retires; `wrong` counts values that were never written.
auto LossyReader = csp::process([](csp::ChannelIn<Value> in, long messages, ReaderResult* result, long* wrong) {
    Value sum = 0;
    long received = 0, bad = 0;
    auto t0 = std::chrono::steady_clock::now();
    try {
        for (;;) {
            const Value v = in();
            bad += v < 0 || v >= messages;
            sum += v;
            ++received;
        }
    } catch (const csp::ChannelRetireException&) {
    }
    result->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result->sum = sum;
    result->received = received;
    *wrong = bad;
});

}  // namespace

int main(int argc, char** argv) {
    const long requested = bench::parse_count(argc, argv, kDefaultMessages, "messages", kWriters);
    const long per = requested / kWriters;
    const long messages = per * kWriters;
    const std::string kind = argc > 2 ? argv[2] : "fifo";
    csp::Buffer spec = csp::buffer(kCapacity);
    if (kind == "infinite") spec = csp::infinite_buffer();
    else if (kind == "overwriting") spec = csp::overwriting_buffer(kCapacity);
    else if (kind == "dropping") spec = csp::dropping_buffer(kCapacity);
    else if (kind != "fifo") {
        std::fprintf(stderr, "usage: %s [messages>=%ld] [fifo|infinite|overwriting|dropping]\n", argv[0], kWriters);
        return 2;
    }
    const bool lossy = kind == "overwriting" || kind == "dropping";

    try {
        csp::Channel<Value> ch{"buffered", spec};
        ReaderResult r;
        long wrong = 0;
        std::vector<csp::Process<>> procs;
        for (long w = 0; w < kWriters; ++w) procs.push_back(Writer(ch.writer(), Value{w * per}, per));
        procs.push_back(lossy ? LossyReader(ch.reader(), messages, &r, &wrong) : Reader(ch.reader(), messages, &r));
        const auto t0 = std::chrono::steady_clock::now();
        csp::Parallel(std::move(procs));
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

        const Value expect = static_cast<Value>(messages) * (static_cast<Value>(messages) - 1) / 2;
        if (lossy ? (r.received > messages || r.received == 0 || wrong != 0 || r.sum > expect)
                  : (r.received != messages || r.sum != expect)) {
            std::fprintf(stderr, "buffered (%s): reader got %ld values (%ld never written) summing to %lld; "
                         "%ld written, summing to %lld\n",
                         kind.c_str(), r.received, wrong, static_cast<long long>(r.sum), messages,
                         static_cast<long long>(expect));
            return 1;
        }
        const double wall_ns_per_op = wall * 1e9 / static_cast<double>(messages);
        const double ns_per_op = lossy ? wall_ns_per_op : r.seconds * 1e9 / static_cast<double>(messages);
        const std::string impl = kind == "fifo" ? "csp" : "csp-" + kind;
        std::printf("RESULT name=buffered impl=%s workers=%u ns_per_op=%.2f wall_ns_per_op=%.2f messages=%ld "
                    "writers=%ld capacity=%zu received=%ld seconds=%.4f\n",
                    impl.c_str(), bench::worker_count(), ns_per_op, wall_ns_per_op, messages, kWriters, kCapacity,
                    r.received, r.seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "buffered: %s\n", e.what());
        return 1;
    }
    return 0;
}
