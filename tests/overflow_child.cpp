// overflow_child: a process that overflows its fiber stack. Run by
// check_crash.py, which expects a clean crash naming the process, not
// silent corruption.
#include <csp/csp.hpp>

#include <cstdio>

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

int main() {
    auto recurse = csp::process("deep", [](int n) { std::printf("%d\n", deep(n)); });
    csp::Parallel(recurse(1 << 30));
    return 0;  // not reached
}
