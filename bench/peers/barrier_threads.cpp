// barrier with std::barrier and 8 threads: the peer of bench/barrier.cpp.
//
// Eight std::threads each call arrive_and_wait() `phases` times on one
// std::barrier<>(8) (C++20; libstdc++ waits on a futex). Figure: ns per
// phase = start of the threads to the join of the last / phases.
//
// Usage: barrier_threads [phases]
#include "../common.hpp"

#include <barrier>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    const long phases = bench::parse_count(argc, argv, 100'000, "phases");
    constexpr int kMembers = 8;
    std::barrier<> barrier(kMembers);
    std::vector<long> done(kMembers, 0);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < kMembers; ++i) {
        threads.emplace_back([&, i] {
            for (long k = 0; k < phases; ++k) {
                barrier.arrive_and_wait();
                ++done[i];
            }
        });
    }
    for (auto& t : threads) t.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (long d : done) {
        if (d != phases) {
            std::fprintf(stderr, "barrier_threads: a member completed %ld of %ld phases\n", d, phases);
            return 1;
        }
    }
    std::printf("RESULT name=barrier impl=std-barrier workers=%d ns_per_op=%.2f phases=%ld members=%d seconds=%.4f\n",
                kMembers, seconds * 1e9 / static_cast<double>(phases), phases, kMembers, seconds);
    return 0;
}
