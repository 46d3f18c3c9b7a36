// overflow_child [BYSTANDERS]: a process that overflows its fiber stack, made
// after BYSTANDERS other processes (default none) that are alive and blocked
// when it overflows, so that its stack is the BYSTANDERS+1st in use. Run by
// check_crash.py, which expects a clean crash naming the process, not
// silent corruption of a neighbour's stack, however many stacks there are.
#include <csp/csp.hpp>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {
// Each frame holds a kilobyte the compiler cannot drop, so the recursion
// walks down the stack a page every four calls until it meets the guard page.
int deep(int n) {
    volatile char frame[1024];
    frame[0] = static_cast<char>(n);
    if (n == 0) return frame[0];
    return deep(n - 1) + frame[0];
}
}  // namespace

int main(int argc, char** argv) {
    const int bystanders = argc > 1 ? std::atoi(argv[1]) : 0;
    csp::Channel<int> gate{"gate"};
    auto wait = csp::process("bystander", [](csp::ChannelIn<int> in) { in(); });
    auto recurse = csp::process("deep", [](int n) { std::printf("%d\n", deep(n)); });
    std::vector<csp::Process<void>> waiting;
    waiting.reserve(static_cast<std::size_t>(bystanders));
    for (int i = 0; i < bystanders; ++i) waiting.push_back(wait(gate.reader()));
    csp::Parallel(waiting, recurse(1 << 30));
    return 0;  // not reached
}
