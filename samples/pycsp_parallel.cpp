// pycsp_parallel: the first example of the PyCSP tutorial, in C++.
//
//     @process                            @process
//     def P1():                           def P2():
//         sleep(1)                            sleep(1)
//         print('P1 exiting')                 print('P2 exiting')
//
//     Parallel(P1(), P2())
//     print('Terminating')
//
// csp::sleep parks only the calling process, so the two sleeps overlap and
// the program takes about one second, not two.
#include <csp/csp.hpp>
#include <chrono>
#include <iostream>
#include <syncstream>

using namespace std::chrono_literals;

auto P1 = csp::process([] {
    csp::sleep(1s);
    std::osyncstream(std::cout) << "P1 exiting\n";  // P1 and P2 may print at once
});

auto P2 = csp::process([] {
    csp::sleep(1s);
    std::osyncstream(std::cout) << "P2 exiting\n";
});

int main() {
    csp::Parallel(P1(), P2());
    std::cout << "Terminating\n";
}
