// mpi_diverged: rank 0 writes to a shared channel from main before any
// Parallel, the other ranks do not; then a reader is placed on the last rank.
// Rank 0 chose the channel's home at the write (nothing placed yet: by its
// number, rank 0), the others at the Parallel (by its reader: the last
// rank). Run by check_mpi_failure.py under mpirun: the job must fail at once
// with a message naming the channel and both choices, never lose the value
// or hang.
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    csp::Channel<int> seed{"seed", csp::buffer(4)};
    if (world.rank() == 0) seed.writer()(42);
    auto read = csp::process([](csp::ChannelIn<int> in) { return in(); });
    csp::Parallel(csp::on_rank(world.size() - 1, read(seed.reader())));
    std::puts("not reached");
    return 0;
}
