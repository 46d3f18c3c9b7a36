// exit_child: main returns while two spawned processes wait on each other.
// Story: the runtime joins spawned processes at exit; main's own thread
// record is gone by then, and it used to count as an unknown thread that
// might still write, so the deadlock was never reported and exit hung.
// Run with a timeout by meson: it must exit 0, promptly.
#include <csp/csp.hpp>

#include <cstdio>

int main() {
    csp::Channel<int> a{"a"}, b{"b"};
    auto pass_on = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in()); });
    csp::Spawn(pass_on(a.reader(), b.writer()).named("left"),
               pass_on(b.reader(), a.writer()).named("right"));
    std::puts("main returns; the runtime must break the deadlock at exit");
    return 0;
}
