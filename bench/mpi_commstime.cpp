// mpi_commstime: commstime (bench/commstime.cpp) with its four processes
// placed on MPI ranks: Prefix on rank 0, Delta on rank 1, Successor on rank 2
// and Consumer on rank 3, each modulo the number of ranks. So on 2 ranks
// every one of the four channels crosses ranks, and on 4 ranks each process
// has a rank of its own (oversubscribed on a 2-core machine).
//
//        +--------+   a    +-------+   d    +----------+
//   +--> | Prefix | -----> | Delta | -----> | Consumer |
//   |    +--------+        +-------+        +----------+
//   |  c                       | b
//   |    +-----------+         |
//   +----| Successor | <-------+
//        +-----------+
//
// The figure is the consumer's timed loop / (4 x cycles), after a warm-up of
// cycles/10 + 1; the consumer checks it reads 0, 1, 2, ... and poisons its
// channel, and the poison crosses the ranks to end the ring.
//
// Usage: mpirun -np N mpi_commstime [cycles]
// Rank 0 prints: RESULT name=mpi-commstime impl=<csp on 2 ranks, csp-Nranks
// otherwise> workers=W ns_per_op=X ranks=N ...
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include "common.hpp"
#include "commstime.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

using namespace bench::commstime;

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    const long cycles = bench::parse_count(argc, argv, 2000, "cycles");
    const long warmup = cycles / 10 + 1;
    const int size = world.size();
    try {
        csp::Channel<Value> a{"a"}, b{"b"}, c{"c"}, d{"d"};
        auto results = csp::Parallel(csp::on_rank(0 % size, Prefix(Value{0}, c.reader(), a.writer())),
                                     csp::on_rank(1 % size, Delta(a.reader(), b.writer(), d.writer())),
                                     csp::on_rank(2 % size, Successor(b.reader(), c.writer())),
                                     csp::on_rank(3 % size, Consumer(d.reader(), warmup, cycles)));
        if (world.rank() != 0) return 0;
        const ConsumerResult& r = std::get<3>(results);
        if (!r.values_ok) {
            std::fprintf(stderr, "mpi_commstime: consumer read wrong values\n");
            return 1;
        }
        const double ns_per_op = r.seconds * 1e9 / (4.0 * static_cast<double>(r.cycles));
        const std::string impl = size == 2 ? "csp" : "csp-" + std::to_string(size) + (size == 1 ? "rank" : "ranks");
        std::printf("RESULT name=mpi-commstime impl=%s workers=%u ns_per_op=%.2f latency_us=%.3f ranks=%d "
                    "cycles=%ld seconds=%.4f\n",
                    impl.c_str(), bench::worker_count(), ns_per_op, ns_per_op / 1e3, size, r.cycles, r.seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mpi_commstime (rank %d): %s\n", world.rank(), e.what());
        return 1;
    }
    return 0;
}
