// farm: a Mandelbrot set computed by a farm of workers spread over MPI ranks.
//
//   rows (rank 0) --jobs--> worker x 8 (round-robin over the ranks) --results--> picture (rank 0)
//
// The source hands out row numbers; each worker computes a row (the
// iteration count of each point) and sends it back with its number; the
// collector puts the rows in place. Run it with `mpirun -np 4 build/samples/mpi-farm`,
// or alone (one rank: the same network, all of it local). Rank 0 prints the
// picture and the total iteration count, the same however many ranks ran it.
//
//   mpi-farm [WIDTH HEIGHT MAX_ITERATIONS]   (default 78 24 2000: a picture for a terminal)
//   mpi-farm ROWS                            (bench/run's mpi-farm: 1200 x ROWS, 5000; rank 0
//                                             prints a RESULT line, timed from main's start)
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Size {
    int width, height, limit;
};

// A row of the picture: its number and each point's iteration count.
using Row = std::pair<int, std::vector<int>>;

int iterations(std::complex<double> c, int limit) {
    std::complex<double> z = 0;
    int n = 0;
    while (n < limit && std::norm(z) <= 4.0) {
        z = z * z + c;
        ++n;
    }
    return n;
}

auto rows = csp::process("rows", [](csp::ChannelOut<int> jobs, int height) {
    for (int y = 0; y < height; ++y) jobs(y);
});  // (the end leaves: the workers see retire once the jobs are taken)

auto worker = csp::process("worker", [](csp::ChannelIn<int> jobs, csp::ChannelOut<Row> results, Size s) {
    int done = 0;
    try {
        for (;;) {
            const int y = jobs();
            std::vector<int> counts(static_cast<std::size_t>(s.width));
            for (int x = 0; x < s.width; ++x) {
                const std::complex<double> c(-2.2 + 3.2 * x / s.width, -1.2 + 2.4 * y / s.height);
                counts[static_cast<std::size_t>(x)] = iterations(c, s.limit);
            }
            results(Row{y, std::move(counts)});
            ++done;
        }
    } catch (const csp::ChannelRetireException&) {
    }
    return done;  // rows this worker computed
});

auto picture = csp::process("picture", [](csp::ChannelIn<Row> results, Size s) {
    std::vector<std::vector<int>> image(static_cast<std::size_t>(s.height));
    for (int i = 0; i < s.height; ++i) {
        Row row = results();
        image[static_cast<std::size_t>(row.first)] = std::move(row.second);
    }
    return image;
});

}  // namespace

int main(int argc, char** argv) {
    const auto start = std::chrono::steady_clock::now();
    csp::mpi::World world{argc, argv};
    Size size{78, 24, 2000};
    if (argc == 4) size = {std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3])};
    const bool bench = argc == 2;
    if (bench) size = {1200, std::atoi(argv[1]), 5000};
    if (size.width <= 0 || size.height <= 0 || size.limit <= 0) {
        if (world.rank() == 0) std::fprintf(stderr, "usage: mpi-farm [WIDTH HEIGHT MAX_ITERATIONS] | ROWS (positive numbers)\n");
        return 2;
    }

    csp::Channel<int> jobs{"jobs", csp::buffer(16)};  // (row numbers wait here for whichever worker asks next)
    csp::Channel<Row> results{"results", csp::buffer(16)};
    auto [nothing, per_worker, image] =
        csp::Parallel(csp::on_rank(0, rows(jobs.writer(), size.height)),
                      csp::spread(worker(jobs.reader(), results.writer(), size) * 8),
                      csp::on_rank(0, picture(results.reader(), size)));
    (void)nothing;
    if (world.rank() != 0) return 0;
    if (bench) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const std::string impl = world.size() == 1   ? "csp-1rank"
                                 : world.size() == 2 ? "csp"
                                                     : "csp-" + std::to_string(world.size()) + "ranks";
        std::printf("RESULT name=mpi-farm impl=%s workers=1 ns_per_op=%.1f seconds=%.4f ranks=%d rows=%d\n",
                    impl.c_str(), seconds * 1e9 / size.height, seconds, world.size(), size.height);
        return 0;
    }
    std::int64_t total = 0, rows_done = 0;
    const char* shades = " .:-=+*#%@";
    for (const auto& row : image) {
        std::string line;
        for (int n : row) {
            total += n;
            line += shades[n >= size.limit ? 9 : std::min(8, static_cast<int>(std::log2(n + 1)))];
        }
        if (size.width <= 200) std::puts(line.c_str());
    }
    for (int n : per_worker) rows_done += n;
    std::printf("%lld rows by %zu workers on %d ranks, %lld iterations in all\n", static_cast<long long>(rows_done),
                per_worker.size(), world.size(), static_cast<long long>(total));
    std::string shares;  // rows per worker, worker i on rank i % ranks
    for (int n : per_worker) shares += " " + std::to_string(n);
    std::printf("rows per worker:%s\n", shares.c_str());
    return 0;
}
