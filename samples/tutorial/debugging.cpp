// Chapter 8: when something goes wrong: deadlocks and races.
#include <csp/csp.hpp>
#include <csp/sim.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

int main() {
    // A deadlock: each of two processes waits to read from the other.
    // Nothing can wake either: the runtime sees it and throws
    // DeadlockError, whose report names the cycle.
    csp::Channel<int> ping{"ping"}, pong{"pong"};
    auto echo = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in()); };
    auto left = csp::process("left", echo), right = csp::process("right", echo);
    try {
        csp::Parallel(left(ping.reader(), pong.writer()), right(pong.reader(), ping.writer()));
    } catch (const csp::DeadlockError& e) {
        const std::string report = e.what();
        const auto cycle = report.find("wait-for cycle");
        std::printf("DeadlockError: %s\n", report.substr(cycle, report.find('\n', cycle) - cycle).c_str());
    }

    // A race you would rarely see: two increments of a shared register,
    // each a read then a write, can lose one. check_random runs the network
    // under many schedules, one worker and virtual time, until one fails.
    auto increment = csp::process("increment", [](csp::ChannelIn<int> get, csp::ChannelOut<int> set) {
        set(get() + 1);
    });
    auto reg = csp::process("register", [](csp::ChannelOut<int> get, csp::ChannelIn<int> set) {
        int value = 0;
        for (int i = 0; i < 4; ++i) {  // two gets and two sets, in whatever order they come
            csp::Alternation alt{csp::OutputGuard(get, value), csp::InputGuard(set, [&](int v) { value = v; })};
            alt.execute();
        }
        return value;
    });
    try {
        csp::sim::check_random([&] {
            csp::Channel<int> get{"get"}, set{"set"};
            auto [a, b, total] = csp::Parallel(increment(get.reader(), set.writer()),
                                               increment(get.reader(), set.writer()), reg(get.writer(), set.reader()));
            if (total != 2) throw std::runtime_error("lost update: total " + std::to_string(total));
        }, {.iterations = 500, .seed = 1});
        std::printf("no schedule lost an update\n");
    } catch (const csp::sim::Failure& f) {
        const std::string what = f.what();
        std::printf("check_random found: %s\n", what.substr(0, what.find('\n')).c_str());
    }
}
