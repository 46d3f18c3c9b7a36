// stressed_alt: one reader choosing among many busy channels (JCSP's StressedAlt).
//
//   writer x10 --ch[0]--+
//   writer x10 --ch[1]--+
//      ...              +--> Reader: FairSelect over ch[0..9]
//   writer x10 --ch[9]--+
//
// 10 unbuffered channels, 10 writer processes on each (100 writers), each
// writing its id in an endless loop, so every channel almost always has
// writers waiting. One reader makes `messages` choices with csp::FairSelect
// (uniformly random among the ready guards, like Go's select) and checks that
// each value came from a writer of the channel it was read on. The figure is
// ns per message received: the reader's timed loop / messages, after a
// warm-up of at least messages/10 that goes on until every one of the 100
// writers has delivered (on one worker the writers get going one by one, so
// the timed loop would otherwise measure a start-up phase in which a few
// channels carry everything; the RESULT line's warmup= says how many
// messages the warm-up took). When it is done the reader's ends leave (retire);
// each writer's next or pending write then throws ChannelRetireException,
// which ends the writer normally.
//
// The reader uses the runtime-sized form, FairSelect(std::vector<InputGuard<T>>)
// -> std::pair<position, std::optional<T>>: the guards are built once, before
// the loop, and a loop over 10 channels reads better than 10 InputGuard
// arguments and a std::visit over a 10-alternative variant.
//
// Usage: stressed_alt [messages]   (worker count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=stressed_alt impl=csp workers=W ns_per_op=X ...
// (channel_min/channel_max: the fewest and most messages taken from one
// channel in the timed loop, a rough fairness check.)
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace {

using Value = std::int64_t;

constexpr long kDefaultMessages = 1'000'000;
constexpr int kChannels = 10;
constexpr int kWritersPerChannel = 10;

struct ReaderResult {
    double seconds = 0;  // timed loop only
    long messages = 0;   // timed messages
    long warmup = 0;     // messages read before the timed loop
    bool values_ok = false;
    long channel_min = 0, channel_max = 0;
};

auto Writer = csp::process([](csp::ChannelOut<Value> out, Value id) {
    for (;;) out(id);
});

// Writers: all the writers, as one process (a Parallel inside a process).
auto Writers = csp::process([](std::vector<csp::Process<>> writers) {
    csp::Parallel(std::move(writers));
});

auto Reader = csp::process([](std::vector<csp::ChannelIn<Value>> ins, long warmup, long messages) {
    // The guards refer to the ends in `ins`, which outlive them.
    std::vector<csp::InputGuard<Value>> guards;
    for (auto& in : ins) guards.push_back(csp::InputGuard(in));

    std::array<long, kChannels> per_channel{};
    std::array<bool, kChannels * kWritersPerChannel> seen{};
    int unseen = kChannels * kWritersPerChannel;  // writers not heard from yet
    bool ok = true;
    auto take = [&] {
        auto [c, v] = csp::FairSelect(guards);
        const bool valid = v.has_value() && *v >= 0 && *v / kWritersPerChannel == static_cast<Value>(c);
        ok &= valid;
        if (valid && !seen[*v]) {
            seen[*v] = true;
            --unseen;
        }
        ++per_channel[c];
    };
    long warmed = 0;
    // Until every writer has been heard from; the cap stops a writer that
    // never runs from hanging the benchmark (the run then fails).
    for (; warmed < warmup || (unseen > 0 && warmed < 100 * warmup); ++warmed) take();
    per_channel.fill(0);
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < messages; ++i) take();
    auto t1 = std::chrono::steady_clock::now();

    ReaderResult r;
    r.seconds = std::chrono::duration<double>(t1 - t0).count();
    r.messages = messages;
    r.warmup = warmed;
    r.values_ok = ok && unseen == 0;
    r.channel_min = *std::min_element(per_channel.begin(), per_channel.end());
    r.channel_max = *std::max_element(per_channel.begin(), per_channel.end());
    return r;  // `ins` is destroyed: the reader leaves, every channel retires
});

}  // namespace

int main(int argc, char** argv) {
    const long messages = bench::parse_count(argc, argv, kDefaultMessages, "messages");
    const long warmup = messages / 10 + 1;

    try {
        std::vector<csp::Channel<Value>> channels;
        for (int c = 0; c < kChannels; ++c) channels.emplace_back("ch" + std::to_string(c), csp::buffer(0));

        std::vector<csp::ChannelIn<Value>> ins;
        std::vector<csp::Process<>> writers;
        for (int c = 0; c < kChannels; ++c) {
            ins.push_back(channels[c].reader());
            for (int w = 0; w < kWritersPerChannel; ++w)
                writers.push_back(Writer(channels[c].writer(), Value{c * kWritersPerChannel + w}));
        }

        auto results = csp::Parallel(Reader(std::move(ins), warmup, messages), Writers(std::move(writers)));
        const ReaderResult& r = std::get<0>(results);
        if (!r.values_ok) {
            std::fprintf(stderr, "stressed_alt: a message arrived on the wrong channel, "
                                 "or a writer never delivered in %ld warm-up messages\n", r.warmup);
            return 1;
        }
        const double ns_per_op = r.seconds * 1e9 / static_cast<double>(r.messages);
        std::printf("RESULT name=stressed_alt impl=csp workers=%u ns_per_op=%.2f messages=%ld seconds=%.4f "
                    "warmup=%ld channel_min=%ld channel_max=%ld\n",
                    bench::worker_count(), ns_per_op, r.messages, r.seconds, r.warmup, r.channel_min,
                    r.channel_max);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "stressed_alt: %s\n", e.what());
        return 1;
    }
    return 0;
}
