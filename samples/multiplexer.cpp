// multiplexer: three streams share one channel and are split again.
//
//   producer 0 --from0--+                          +--to0--> consumer 0
//   producer 1 --from1--+--> mux --link--> demux --+--to1--> consumer 1
//   producer 2 --from2--+                          +--to2--> consumer 2
//
// The mux alts over its inputs and tags each message with the number of the
// input it came on; it chooses with fair_select, round-robin from the input
// it chose last, so a busy producer cannot hold the others up. The demux
// sends each message to the consumer with that number. Producer k sends
// 0, 1, 2, ... up to its count; consumer k checks that it receives exactly
// those, in order: the pair keeps each stream's order and never mixes
// streams.
//
// Shutdown by retire: a producer's end retires when its body ends, which
// disables the mux's guard on that channel. When all three are disabled, the
// mux's choice throws csp::ChannelRetireException; the mux ends and its end
// of `link` retires, so the demux's read throws in turn, its ends retire,
// and each consumer's read throws: each returns what it received.
//
// Prints, whatever the interleaving:
//   consumer 0: 1000 messages from producer 0, in order
//   consumer 1: 2000 messages from producer 1, in order
//   consumer 2: 3000 messages from producer 2, in order
//   6000 messages received, 6000 sent
#include <csp/csp.hpp>

#include <cstddef>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

constexpr long kCounts[] = {1000, 2000, 3000};  // what each producer sends

struct Tagged {
    std::size_t source;  // the mux input the value came on
    long value;
};

struct Received {
    long count = 0;
    bool in_order = true;
};

auto Producer = csp::process([](csp::ChannelOut<long> out, long count) {
    for (long i = 0; i < count; ++i) out(i);
});  // `out` retires here

auto Mux = csp::process([](std::vector<csp::ChannelIn<long>> ins, csp::ChannelOut<Tagged> out) {
    std::vector<csp::InputGuard<long>> guards;
    for (auto& in : ins) guards.push_back(csp::InputGuard(in));
    csp::Alternation alt{std::move(guards)};
    for (;;) {
        auto [source, value] = alt.fair_select();  // which input, and what it read
        out(Tagged{source, *value});
    }
});

auto Demux = csp::process([](csp::ChannelIn<Tagged> in, std::vector<csp::ChannelOut<long>> outs) {
    for (;;) {
        Tagged t = in();
        outs[t.source](t.value);
    }
});

auto Consumer = csp::process([](csp::ChannelIn<long> in) {
    Received r;
    try {
        for (;;) {
            long v = in();
            r.in_order &= v == r.count;
            ++r.count;
        }
    } catch (const csp::ChannelRetireException&) {
        // the demux has retired: every message has arrived
    }
    return r;
});

int main() {
    csp::Channel<long> from0{"from0"}, from1{"from1"}, from2{"from2"};
    csp::Channel<long> to0{"to0"}, to1{"to1"}, to2{"to2"};
    csp::Channel<Tagged> link{"link"};

    std::vector<csp::ChannelIn<long>> mux_inputs;
    for (auto* ch : {&from0, &from1, &from2}) mux_inputs.push_back(ch->reader());
    std::vector<csp::ChannelOut<long>> demux_outputs;
    for (auto* ch : {&to0, &to1, &to2}) demux_outputs.push_back(ch->writer());

    auto results = csp::Parallel(
        Producer(from0.writer(), kCounts[0]), Producer(from1.writer(), kCounts[1]),
        Producer(from2.writer(), kCounts[2]),
        Mux(std::move(mux_inputs), link.writer()), Demux(link.reader(), std::move(demux_outputs)),
        Consumer(to0.reader()), Consumer(to1.reader()), Consumer(to2.reader()));
    const Received received[] = {std::get<5>(results), std::get<6>(results), std::get<7>(results)};

    long total = 0, sent = 0;
    bool ok = true;
    for (int k = 0; k < 3; ++k) {
        std::printf("consumer %d: %ld messages from producer %d, %s\n", k, received[k].count, k,
                    received[k].in_order ? "in order" : "OUT OF ORDER");
        ok &= received[k].in_order && received[k].count == kCounts[k];
        total += received[k].count;
        sent += kCounts[k];
    }
    std::printf("%ld messages received, %ld sent\n", total, sent);
    return ok ? 0 : 1;
}
