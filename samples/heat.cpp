// heat: a 1-D heat diffusion grid, one process per block of cells and a
// barrier per time step (the bulk-synchronous pattern: compute, sync, swap).
//
// A rod of kCells cells with insulated ends starts cold, with a hot stretch
// in the middle. Each step, every cell moves towards the mean of its two
// neighbours: next[i] = u[i] + r * (u[i-1] - 2 u[i] + u[i+1]), an end cell
// being its own outer neighbour (no heat leaves the rod). The grid is two
// arrays, now and next; block b's process writes only its own cells of
// next, but reads its neighbours' edge cells of now, so no process may
// start step t+1 before every process has finished step t. That is what
// the barrier says: each process syncs once per step, and a phase ends only
// when all have arrived.
//
// Prints the grid's size, the heat at a few places after the last step,
// that the total heat is what it was at the start (to rounding), and that
// the result is the sequential computation's, cell for cell (each cell's
// arithmetic is the same, in whichever process it ran).
#include <csp/csp.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <vector>

namespace {

constexpr int kCells = 1200, kBlocks = 8, kSteps = 2000;
constexpr double kRate = 0.25;  // r: stable for r <= 0.5

// step_cell: cell i's next value from the grid `u` (insulated ends).
double step_cell(const std::vector<double>& u, int i) {
    const double left = u[i > 0 ? i - 1 : i];
    const double right = u[i + 1 < kCells ? i + 1 : i];
    return u[i] + kRate * (left - 2 * u[i] + right);
}

std::vector<double> initial() {
    std::vector<double> u(kCells, 0.0);
    for (int i = kCells / 2 - 50; i < kCells / 2 + 50; ++i) u[i] = 100.0;
    return u;
}

}  // namespace

int main() {
    std::array<std::vector<double>, 2> grid{initial(), std::vector<double>(kCells)};
    const double heat_before = std::accumulate(grid[0].begin(), grid[0].end(), 0.0);

    csp::Barrier step{"step"};
    auto block = csp::process("block", [&grid](int lo, int hi, csp::BarrierEnd end) {
        for (int t = 0; t < kSteps; ++t) {
            const std::vector<double>& now = grid[t % 2];
            std::vector<double>& next = grid[(t + 1) % 2];
            for (int i = lo; i < hi; ++i) next[i] = step_cell(now, i);
            end.sync();  // every block has written step t+1: it may be read
        }
    });
    std::vector<csp::Process<>> blocks;
    for (int b = 0; b < kBlocks; ++b) {
        blocks.push_back(block(b * kCells / kBlocks, (b + 1) * kCells / kBlocks, step.end()));
    }
    csp::Parallel(std::move(blocks));
    const std::vector<double>& result = grid[kSteps % 2];

    // The same steps, one cell after another.
    std::vector<double> u = initial(), next(kCells);
    for (int t = 0; t < kSteps; ++t) {
        for (int i = 0; i < kCells; ++i) next[i] = step_cell(u, i);
        u.swap(next);
    }

    const double heat_after = std::accumulate(result.begin(), result.end(), 0.0);
    std::printf("%d cells in %d blocks, %d steps\n", kCells, kBlocks, kSteps);
    for (int i : {kCells / 2, kCells / 2 + 100, kCells / 2 + 200}) std::printf("cell %d: %.4f\n", i, result[i]);
    std::printf("total heat %.4f before and %.4f after: %s\n", heat_before, heat_after,
                std::fabs(heat_before - heat_after) < 1e-6 * heat_before ? "conserved" : "NOT conserved");
    std::printf("%s\n", result == u ? "the same as the sequential computation, cell for cell"
                                    : "DIFFERENT from the sequential computation");
}
