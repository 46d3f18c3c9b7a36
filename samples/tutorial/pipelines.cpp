// Chapter 5: pipelines and the process library.
#include <csp/csp.hpp>

#include <cstdio>
#include <vector>

int main() {
    // csp::lib has the small processes every network needs. Here: the
    // numbers from 1, squared, the first 5 of them, into a collector.
    csp::Channel<int> a{"a"}, b{"b"}, c{"c"};
    auto collect = csp::process("collect", [](csp::ChannelIn<int> in) {
        std::vector<int> got;
        try {
            for (;;) got.push_back(in());
        } catch (const csp::ChannelRetireException&) {
        }
        return got;
    });
    auto [n, m, t, squares] = csp::Parallel(csp::lib::numbers(a.writer(), 1),
                                            csp::lib::map([](int x) { return x * x; }, a.reader(), b.writer()),
                                            csp::lib::take(5, b.reader(), c.writer()), collect(c.reader()));
    std::printf("squares:");
    for (int s : squares) std::printf(" %d", s);
    std::printf("\n");

    // csp::pipeline makes the channels for you: a source, stages, a sink.
    // A stage may be a plain function (csp::stage), and `* 4` runs four
    // copies of it; csp::ordered keeps the input order.
    auto source = csp::process([](csp::ChannelOut<long> out) {
        for (long i = 1; i <= 1000; ++i) out(i);
    });
    auto sum = csp::process([](csp::ChannelIn<long> in) {
        long total = 0;
        try {
            for (;;) total += in();
        } catch (const csp::ChannelRetireException&) {
        }
        return total;
    });
    const long total = csp::pipeline(source, csp::stage([](long x) { return x * x; }) * 4, sum);
    std::printf("1^2 + 2^2 + ... + 1000^2 = %ld\n", total);

    auto first_ten = csp::process([](csp::ChannelIn<long> in) {
        std::vector<long> got;
        for (int i = 0; i < 10; ++i) got.push_back(in());
        in.poison();  // no more wanted
        return got;
    });
    const auto in_order = csp::pipeline(source, csp::ordered(csp::stage([](long x) { return 10 * x; }) * 4), first_ten);
    std::printf("four stages in parallel, order kept:");
    for (long x : in_order) std::printf(" %ld", x);
    std::printf("\n");
}
