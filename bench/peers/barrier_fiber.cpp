// barrier with Boost.Fiber: the peer of bench/barrier.cpp, same shape.
//
// Eight fibers each call boost::fibers::barrier::wait() `phases` times on
// one barrier(8). Figure: ns per phase = launch of the fibers to the join of
// the last / phases.
//
// Usage: barrier_fiber [phases] [rr|ws|ws-suspend] [threads]  (see fiber_common.hpp)
#include "fiber_common.hpp"

#include <chrono>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    const bench::FiberArgs a = bench::parse_fiber_args(argc, argv, 1'000'000, "phases");
    constexpr int kMembers = 8;
    const long phases = a.count;
    return bench::run_on_scheduler(a.sched, [&] {
        boost::fibers::barrier barrier(kMembers);
        std::vector<long> done(kMembers, 0);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<boost::fibers::fiber> fibers;
        for (int i = 0; i < kMembers; ++i) {
            fibers.emplace_back([&, i] {
                for (long k = 0; k < phases; ++k) {
                    barrier.wait();
                    ++done[i];
                }
            });
        }
        for (auto& f : fibers) f.join();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (long d : done) {
            if (d != phases) {
                std::fprintf(stderr, "barrier_fiber: a member completed %ld of %ld phases\n", d, phases);
                return 1;
            }
        }
        std::printf("RESULT name=barrier impl=%s workers=%u ns_per_op=%.2f phases=%ld members=%d seconds=%.4f\n",
                    a.sched.impl.c_str(), a.sched.threads, seconds * 1e9 / static_cast<double>(phases), phases,
                    kMembers, seconds);
        return 0;
    });
}
