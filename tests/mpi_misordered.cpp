// mpi_misordered: the last rank makes its two shared channels in the other
// order. Run by check_mpi_failure.py under mpirun: the job must fail at once
// with a message naming both channels, never match them wrongly or hang.
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <cstdio>
#include <optional>
#include <string>

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    std::optional<csp::Channel<int>> first, second;
    if (world.rank() == world.size() - 1) {
        second.emplace("second");
        first.emplace("first");
    } else {
        first.emplace("first");
        second.emplace("second");
    }
    auto write = csp::process([](csp::ChannelOut<int> out) { out(1); });
    auto read = csp::process([](csp::ChannelIn<int> in) { return in(); });
    csp::Parallel(csp::on_rank(0, write(first->writer())), csp::on_rank(world.size() - 1, read(first->reader())));
    std::puts("not reached");
    return 0;
}
