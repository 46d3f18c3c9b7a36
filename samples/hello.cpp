// hello: two processes talk over a channel. Build with ./setup.sh, run build/samples/hello.
#include <csp/csp.hpp>
#include <iostream>
#include <string>

int main() {
    auto greeter = csp::process([](csp::ChannelOut<std::string> out) {
        out("hello");
        out("world");
    });  // the body ends: its end `out` retires, and so does the channel
    auto printer = csp::process([](csp::ChannelIn<std::string> in) {
        for (;;) std::cout << in() << '\n';  // ends on ChannelRetireException
    });

    csp::Channel<std::string> greetings{"greetings"};
    csp::Parallel(greeter(greetings.writer()), printer(greetings.reader()));
}
