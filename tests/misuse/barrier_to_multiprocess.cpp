// expect: barriers (csp::Barrier, csp::BarrierEnd) cannot be handed to another OS process yet
#include <csp/csp.hpp>

int main() {
    csp::Barrier b{"b"};
    auto child = csp::multiprocess([](csp::BarrierEnd e) { e.sync(); });
    csp::Parallel(child(b.end()));
}
