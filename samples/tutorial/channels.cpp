// Chapter 1: processes and channels.
#include <csp/csp.hpp>

#include <cstdio>

int main() {
    // A channel of ints. It has two kinds of end: writers and readers.
    csp::Channel<int> numbers{"numbers"};

    // A process is a function run concurrently with others. csp::process
    // makes a factory; calling it with arguments makes a process (nothing
    // runs yet).
    auto count_to = csp::process("count", [](csp::ChannelOut<int> out, int n) {
        for (int i = 1; i <= n; ++i) out(i);  // each write waits for a reader
    });
    auto add_up = csp::process("add", [](csp::ChannelIn<int> in, int n) {
        int sum = 0;
        for (int i = 0; i < n; ++i) sum += in();  // each read waits for a writer
        return sum;
    });

    // Parallel runs them together and returns when both have ended, with
    // their results in order (a process that returns nothing gives
    // std::monostate).
    auto [nothing, sum] = csp::Parallel(count_to(numbers.writer(), 10), add_up(numbers.reader(), 10));
    std::printf("1 + 2 + ... + 10 = %d\n", sum);

    // Sequence runs them one after another. A buffered channel lets the
    // writer run ahead of its reader by up to its capacity: here all ten.
    csp::Channel<int> buffered{"buffered", csp::buffer(10)};
    auto [again, total] = csp::Sequence(count_to(buffered.writer(), 10), add_up(buffered.reader(), 10));
    std::printf("the same through a buffer, one process after the other: %d\n", total);
}
