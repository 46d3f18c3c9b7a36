// expect: this argument is a channel end whose values cannot cross OS processes
#include <csp/csp.hpp>

#include <string>

struct Opaque {  // neither trivially copyable nor serializable
    std::string text;
};

int main() {
    csp::Channel<Opaque> ch{"ch"};
    auto child = csp::multiprocess([](csp::ChannelIn<Opaque> in) { in(); });
    csp::Parallel(child(ch.reader()));
}
