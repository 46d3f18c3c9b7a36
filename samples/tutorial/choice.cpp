// Chapter 3: choice (alternation).
#include <csp/csp.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

int main() {
    csp::Channel<int> numbers{"numbers"};
    csp::Channel<std::string> words{"words"};
    csp::Channel<int> quit{"quit"};

    auto count = csp::process("count", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 3; ++i) out(i);
    });
    auto say = csp::process("say", [](csp::ChannelOut<std::string> out) {
        for (const char* w : {"one", "two"}) out(w);
    });
    // A server that waits for whichever comes first: a number, a word or,
    // when both have retired, the end. Each guard's action runs when the
    // guard is chosen.
    auto server = csp::process("server", [](csp::ChannelIn<int> n, csp::ChannelIn<std::string> w) {
        int numbers = 0, words = 0;
        try {
            for (;;) {
                csp::Alternation alt{csp::InputGuard(n, [&](int) { ++numbers; }),
                                     csp::InputGuard(w, [&](const std::string&) { ++words; })};
                alt.execute();
            }
        } catch (const csp::ChannelRetireException&) {  // every guard's channel retired
        }
        std::printf("server: %d numbers and %d words\n", numbers, words);
    });
    csp::Parallel(count(numbers.writer()), say(words.writer()), server(numbers.reader(), words.reader()));

    // PriSelect: the first ready guard in argument order; a TimeoutGuard
    // is ready when its time has passed, a SkipGuard at once. (main keeps an
    // end of each side of 'quit': when every end of a side has gone, the
    // channel is retired, and a choice on retired channels only throws.)
    auto quit_reader = quit.reader();
    auto quit_writer = quit.writer();
    auto r = csp::PriSelect(csp::InputGuard(quit_reader), csp::TimeoutGuard(10ms));
    std::printf("nobody wrote to 'quit': guard %zu (the timeout) was chosen\n", r.index());
    auto s = csp::PriSelect(csp::InputGuard(quit_reader), csp::SkipGuard());
    std::printf("with a skip guard: guard %zu, at once\n", s.index());

    // Output guards: a choice may offer to write, too.
    csp::Channel<int> left{"left"}, right{"right"};
    auto offer = csp::process("offer", [](csp::ChannelOut<int> a, csp::ChannelOut<int> b) {
        for (int i = 0; i < 4; ++i) csp::AltSelect(csp::OutputGuard(a, i), csp::OutputGuard(b, i));
    });
    auto take = csp::process("take", [](csp::ChannelIn<int> in) {
        int n = 0;
        try {
            for (;;) in(), ++n;
        } catch (const csp::ChannelRetireException&) {
        }
        return n;
    });
    auto [o, l, rr] = csp::Parallel(offer(left.writer(), right.writer()), take(left.reader()), take(right.reader()));
    std::printf("4 values offered to either of two readers: %d in all\n", l + rr);
}
