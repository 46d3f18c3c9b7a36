// sorting_pump: occam's sorting pump. A chain of cells, each one pass of a
// bubble sort: a cell keeps the largest value it has seen and passes every
// smaller one on, and when its input retires it passes on the one it kept.
// So each cell carries its stream's largest value to the end, and n cells
// sort n values: what leaves the last cell is in ascending order. All the
// cells work at once: the pump sorts in time proportional to n, with n
// processes.
//
// See it: CSP_TRACE=pump.json ./sorting_pump 12, then
// tools/trace_summary.py pump.json pump.svg (docs/tutorial/classics.md).
#include <csp/csp.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

auto cell = csp::process("cell", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
    int kept;
    try {
        kept = in();
    } catch (const csp::ChannelRetireException&) {
        return;  // nothing came: nothing to pass on
    }
    try {
        for (;;) {
            const int next = in();
            out(std::min(kept, next));
            kept = std::max(kept, next);
        }
    } catch (const csp::ChannelRetireException&) {
    }
    out(kept);
});

}  // namespace

int main(int argc, char** argv) {
    const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
    std::mt19937 random(2026);
    std::vector<int> values(static_cast<std::size_t>(n));
    for (int& v : values) v = static_cast<int>(random() % 100000);

    // The chain: links[0] feeds cell 0, links[n] leaves cell n - 1.
    std::vector<csp::Channel<int>> links;
    for (int i = 0; i <= n; ++i) links.emplace_back("link " + std::to_string(i));
    std::vector<csp::Process<>> cells;
    for (int i = 0; i < n; ++i) cells.push_back(cell(links[static_cast<std::size_t>(i)].reader(),
                                                     links[static_cast<std::size_t>(i) + 1].writer()));

    auto feed = csp::process("feed", [&values](csp::ChannelOut<int> out) {
        for (int v : values) out(v);
    });
    auto drain = csp::process("drain", [](csp::ChannelIn<int> in) {
        std::vector<int> got;
        try {
            for (;;) got.push_back(in());
        } catch (const csp::ChannelRetireException&) {
        }
        return got;
    });
    auto [fed, pumped, sorted] = csp::Parallel(feed(links.front().writer()), std::move(cells), drain(links.back().reader()));

    std::vector<int> expected = values;
    std::sort(expected.begin(), expected.end());
    std::printf("%d values through a pump of %d cells: %s\n", n, n,
                sorted == expected ? "ascending, each value once" : "WRONG");
    std::printf("smallest %d, largest %d\n", sorted.empty() ? 0 : sorted.front(), sorted.empty() ? 0 : sorted.back());
    return sorted == expected ? 0 : 1;
}
