// barrier: 8 processes in step on one csp::Barrier.
//
// Eight member processes each call sync() on their own end of one barrier,
// `phases` times; a phase ends when all eight have arrived. Each member
// counts its completed syncs and the program checks that every member
// completed every phase. Figure: ns per phase = the whole Parallel (start
// of the eight processes to the end of the last) / phases, each phase being
// one sync by each of the 8 members.
//
// Usage: barrier [phases]     (worker count: CSP_THREADS, read by the runtime)
// Prints one line: RESULT name=barrier impl=csp workers=W ns_per_op=X ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

constexpr long kDefaultPhases = 1'000'000;
constexpr int kMembers = 8;

auto Member = csp::process([](csp::BarrierEnd end, long phases, long* done) {
    long n = 0;
    for (long k = 0; k < phases; ++k) {
        end.sync();
        ++n;
    }
    *done = n;
});

}  // namespace

int main(int argc, char** argv) {
    const long phases = bench::parse_count(argc, argv, kDefaultPhases, "phases");
    try {
        csp::Barrier barrier{"phase"};
        std::vector<long> done(kMembers, 0);
        std::vector<csp::Process<>> members;
        for (int i = 0; i < kMembers; ++i) members.push_back(Member(barrier.end(), phases, &done[i]));
        const auto t0 = std::chrono::steady_clock::now();
        csp::Parallel(std::move(members));
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (long d : done) {
            if (d != phases) {
                std::fprintf(stderr, "barrier: a member completed %ld of %ld phases\n", d, phases);
                return 1;
            }
        }
        std::printf("RESULT name=barrier impl=csp workers=%u ns_per_op=%.2f phases=%ld members=%d seconds=%.4f\n",
                    bench::worker_count(), seconds * 1e9 / static_cast<double>(phases), phases, kMembers, seconds);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "barrier: %s\n", e.what());
        return 1;
    }
    return 0;
}
