// Chapter 2: how a network ends: retire and poison.
#include <csp/csp.hpp>

#include <cstdio>

int main() {
    // Retire: a writer that is done leaves; when the last writer has left,
    // readers get ChannelRetireException (after any buffered values). A
    // process that ends by it has ended normally, and its own ends retire
    // too, so "done" flows downstream.
    csp::Channel<int> raw{"raw"}, doubled{"doubled"};
    auto source = csp::process("source", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 5; ++i) out(i);
    });  // leaving the body retires `out`
    auto twice = csp::process("twice", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (;;) out(2 * in());  // ends by ChannelRetireException
    });
    auto sink = csp::process("sink", [](csp::ChannelIn<int> in) {
        int n = 0;
        try {
            for (;;) std::printf("got %d\n", in()), ++n;
        } catch (const csp::ChannelRetireException&) {
            std::printf("sink: retired after %d values\n", n);
        }
    });
    csp::Parallel(source(raw.writer()), twice(raw.reader(), doubled.writer()), sink(doubled.reader()));

    // Poison: anyone may poison a channel; every blocked and later read or
    // write on it throws ChannelPoisonException, and a process that ends
    // by it poisons the ends it holds, so poison spreads both ways.
    csp::Channel<int> work{"work"}, results{"results"};
    auto producer = csp::process("producer", [](csp::ChannelOut<int> out) {
        for (int i = 1;; ++i) out(i);  // would run for ever
    });
    auto worker = csp::process("worker", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (;;) out(in() * in());
    });
    auto boss = csp::process("boss", [](csp::ChannelIn<int> in) {
        for (int i = 0; i < 3; ++i) std::printf("result %d\n", in());
        in.poison();  // enough: stop everybody
    });
    csp::Parallel(producer(work.writer()), worker(work.reader(), results.writer()), boss(results.reader()));
    std::printf("all three ended\n");
}
