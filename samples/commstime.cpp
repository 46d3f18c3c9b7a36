// commstime: Welch's classic benchmark of a CSP implementation, written with
// the ready-made processes of csp::lib. Four processes in a ring:
//
//   prefix(0) --a--> delta --b--> successor --c--> (back to prefix)
//                      \--d--> consumer
//
// prefix sends 0 and then passes on what comes round; successor adds one; so
// the consumer sees 0, 1, 2, ... One number round the ring is four
// communications. The consumer takes N numbers, checks them, times them, and
// poisons its channel: the poison spreads round the ring and every process
// ends. Prints "commstime: N numbers, each once and in order" and the time
// per communication (which varies; bench/commstime measures it properly).
#include <csp/csp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
    const long n = argc > 1 ? std::atol(argv[1]) : 100000;
    csp::Channel<long> a{"a"}, b{"b"}, c{"c"}, d{"d"};

    auto consumer = csp::process("consumer", [](csp::ChannelIn<long> in, long n) {
        const auto start = std::chrono::steady_clock::now();
        long in_order = 0;
        for (long i = 0; i < n; ++i) in_order += in() == i ? 1 : 0;
        const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
        in.poison();  // ends the ring
        return std::make_pair(in_order, took.count() / (4.0 * static_cast<double>(n)));
    });

    std::vector<csp::ChannelOut<long>> outs;
    outs.push_back(b.writer());
    outs.push_back(d.writer());
    auto [prefix, delta, successor, result] =
        csp::Parallel(csp::lib::prefix(0L, c.reader(), a.writer()), csp::lib::delta(a.reader(), std::move(outs)),
                      csp::lib::successor(b.reader(), c.writer()), consumer(d.reader(), n));
    (void)prefix, (void)delta, (void)successor;
    const auto [in_order, ns] = result;
    if (in_order != n) {
        std::printf("commstime: only %ld of %ld numbers came in order\n", in_order, n);
        return 1;
    }
    std::printf("commstime: %ld numbers, each once and in order\n", n);
    std::printf("%.0f ns per communication (delta writes to both outputs through a choice)\n", ns);
    return 0;
}
