// pipeline: producer -> square -> add_one -> consumer, shut down by retire.
//
// The producer retires its end when it has sent every number. Each stage's
// read then throws csp::ChannelRetireException, which ends the stage normally
// and retires the end it writes to, so the retire passes down the pipeline
// until the consumer sees it and returns its sum. No process is left blocked.
#include <csp/csp.hpp>
#include <cstdio>
#include <functional>

int main() {
    constexpr long count = 1000;

    auto producer = csp::process([](csp::ChannelOut<long> out, long n) {
        for (long i = 1; i <= n; ++i) out(i);
        out.retire();  // leaving the body would retire it too; here it is said aloud
    });
    auto stage = csp::process(
        [](csp::ChannelIn<long> in, csp::ChannelOut<long> out, std::function<long(long)> f) {
            for (;;) out(f(in()));
        });
    auto consumer = csp::process([](csp::ChannelIn<long> in) {
        long sum = 0;
        try {
            for (;;) sum += in();
        } catch (const csp::ChannelRetireException&) {
            // upstream has retired and the buffer (if any) is drained: the sum is complete
        }
        return sum;
    });

    // A buffered channel at the head: after the producer retires, its reader
    // still drains what is buffered before it sees the retire.
    csp::Channel<long> numbers{"numbers", csp::buffer(16)};
    csp::Channel<long> squares{"squares"};
    csp::Channel<long> results{"results"};

    auto ended = csp::Parallel(
        producer(numbers.writer(), count),
        stage(numbers.reader(), squares.writer(), [](long x) { return x * x; }),
        stage(squares.reader(), results.writer(), [](long x) { return x + 1; }),
        consumer(results.reader()));
    long sum = std::get<3>(ended);  // void processes give std::monostate

    long expected = count * (count + 1) * (2 * count + 1) / 6 + count;
    std::printf("sum of i*i + 1 for i in 1..%ld = %ld\n", count, sum);
    if (sum != expected) {
        std::printf("wrong: expected %ld\n", expected);
        return 1;
    }
}
