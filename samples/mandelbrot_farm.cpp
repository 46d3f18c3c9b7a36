// mandelbrot_farm: a farm of OS processes. A farmer hands out the rows of
// a picture of the Mandelbrot set; workers, each a csp::multiprocess (a
// forked OS process of its own, so they compute on every core without
// sharing anything), take rows as they become free and send back each row's
// iteration counts (a std::pair<int, std::vector<int>>: it crosses between
// OS processes by cereal); a harvester puts the rows in their places.
//
//   farmer --rows--> worker x 4 --done--> harvester
//
// When the farmer has handed out every row it retires 'rows'; each worker's
// next read then ends it, and when the last has gone 'done' retires and the
// harvester returns the picture. The picture is printed in characters and
// compared with the one computed in this process alone.
//
// Draw it: CSP_GRAPH=farm.dot ./mandelbrot_farm, then kill -USR1 while it
// runs (a larger picture: ./mandelbrot_farm 2000 1000).
#include <csp/csp.hpp>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr int kMaxIterations = 500;

// escape: the iterations before z -> z^2 + c leaves the circle of radius 2
// (kMaxIterations: it stays: c is in the set).
int escape(std::complex<double> c) {
    std::complex<double> z = 0;
    for (int i = 0; i < kMaxIterations; ++i) {
        if (std::norm(z) > 4.0) return i;
        z = z * z + c;
    }
    return kMaxIterations;
}

std::vector<int> row_of(int y, int width, int height) {
    std::vector<int> row(static_cast<std::size_t>(width));
    for (int x = 0; x < width; ++x) {
        row[static_cast<std::size_t>(x)] = escape({-2.2 + 3.0 * x / width, -1.2 + 2.4 * y / height});
    }
    return row;
}

using Row = std::pair<int, std::vector<int>>;

}  // namespace

int main(int argc, char** argv) {
    const int width = argc > 1 ? std::atoi(argv[1]) : 72;
    const int height = argc > 2 ? std::atoi(argv[2]) : 28;
    constexpr int kWorkers = 4;

    auto farmer = csp::process("farmer", [height](csp::ChannelOut<int> rows) {
        for (int y = 0; y < height; ++y) rows(y);
    });
    auto worker = csp::multiprocess("worker", [width, height](csp::ChannelIn<int> rows, csp::ChannelOut<Row> done) {
        for (;;) {
            const int y = rows();
            done({y, row_of(y, width, height)});
        }
    });
    auto harvester = csp::process("harvester", [height](csp::ChannelIn<Row> done) {
        std::vector<std::vector<int>> picture(static_cast<std::size_t>(height));
        int rows = 0;
        try {
            for (;;) {
                Row r = done();
                picture[static_cast<std::size_t>(r.first)] = std::move(r.second);
                ++rows;
            }
        } catch (const csp::ChannelRetireException&) {
        }
        return std::make_pair(rows, picture);
    });

    csp::Channel<int> rows{"rows"};
    csp::Channel<Row> done{"done"};
    auto [f, w, harvest] = csp::Parallel(farmer(rows.writer()), kWorkers * worker(rows.reader(), done.writer()),
                                         harvester(done.reader()));
    const auto& [count, picture] = harvest;

    const char* shades = " .:-=+*%#@";
    for (const auto& row : picture) {
        std::string line;
        for (int n : row) line += n >= kMaxIterations ? '@' : shades[std::min(8, static_cast<int>(std::log2(n + 1)))];
        std::printf("%s\n", line.c_str());
    }
    bool same = count == height;
    for (int y = 0; same && y < height; ++y) same = picture[static_cast<std::size_t>(y)] == row_of(y, width, height);
    std::printf("%d rows of %d by %d OS-process workers: %s\n", count, width, kWorkers,
                same ? "the same as computed in one process" : "WRONG");
    return same ? 0 : 1;
}
