// early_thread: a std::thread started before the runtime, which writes to a
// channel later, must count as a thread that may still wake a process.
// Story: the deadlock detector took every thread older than the runtime as
// one that does not use csp (meant for a sanitizer's background thread), so
// main, reading from that thread's channel, got a false DeadlockError.
// Run by meson: exit 0 when main reads the value the thread wrote.
#include <csp/csp.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

int main() {
    std::promise<csp::ChannelOut<int>> handed;
    std::thread early([end = handed.get_future()]() mutable {
        csp::ChannelOut<int> out = end.get();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // main has long been waiting
        out(42);
    });
    // Only now does csp start: the thread above is older than the runtime.
    csp::Channel<int> late{"from-an-early-thread"};
    auto in = late.reader();
    handed.set_value(late.writer());
    int got = -1;
    try {
        got = in();
    } catch (const csp::DeadlockError& e) {
        std::printf("false deadlock: %s\n", e.what());
        std::fflush(stdout);
        std::_Exit(1);  // (the thread's write would now wait for ever)
    }
    early.join();
    std::printf("read %d\n", got);
    return got == 42 ? 0 : 1;
}
