// expect: csp::ExtendedInputGuard takes a channel end: pass ch.reader(), not the Channel
#include <csp/csp.hpp>

int main() {
    csp::Channel<int> ch{"ch"};
    csp::PriSelect(csp::ExtendedInputGuard(ch, [](const int&) {}));
}
