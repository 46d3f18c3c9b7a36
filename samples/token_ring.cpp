// token_ring: the benchmarks game's thread-ring. 503 processes in a ring,
// each linked to the next by a channel; a token, a count of hops left, goes
// round and round, each process passing it on with one hop less. The one
// that receives 0 says who it is and poisons the ring: each process's next
// read or write throws ChannelPoisonException, which ends it and poisons
// the ends it holds, so the poison goes round and every process ends.
//
// See it: CSP_TRACE=ring.json ./token_ring 40 8, then
// tools/trace_summary.py ring.json ring.svg (docs/tutorial/classics.md).
#include <csp/csp.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    const int hops = argc > 1 ? std::atoi(argv[1]) : 100000;
    const int size = argc > 2 ? std::atoi(argv[2]) : 503;

    std::atomic<int> last{0};  // the process that received 0
    auto member = csp::process("member", [&last](int id, csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (;;) {
            const int token = in();
            if (token == 0) {
                last = id;
                out.poison();
                return;
            }
            out(token - 1);
        }
    });

    std::vector<csp::Channel<int>> links;
    for (int i = 0; i < size; ++i) links.emplace_back("link " + std::to_string(i));
    std::vector<csp::Process<>> ring;
    for (int i = 0; i < size; ++i) {
        // Process i + 1 (numbered from 1, as the benchmark does) reads link i and writes link i + 1.
        ring.push_back(member(i + 1, links[static_cast<std::size_t>(i)].reader(),
                              links[static_cast<std::size_t>((i + 1) % size)].writer()));
    }
    auto start = csp::process("start", [hops](csp::ChannelOut<int> first) { first(hops); });
    csp::Parallel(start(links[0].writer()), std::move(ring));

    // The token starts at process 1 with `hops` left, so process
    // hops % size + 1 receives 0.
    const int expected = hops % size + 1;
    std::printf("token passed %d times round a ring of %d processes: process %d received 0\n", hops, size,
                last.load());
    if (last.load() != expected) {
        std::printf("wrong: expected process %d\n", expected);
        return 1;
    }
    std::printf("every process ended\n");
    return 0;
}
