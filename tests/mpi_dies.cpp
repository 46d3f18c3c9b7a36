// mpi_dies: rank 1 dies (SIGKILL) in the middle of traffic with rank 0.
// Run by check_rank_death.py under mpirun: the job must end promptly, not
// hang, with a message naming the rank. (Bookworm's MPIs cannot survive a
// dead rank: Open MPI 5's ULFM is what would turn this into poison.)
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    csp::Channel<std::int64_t> ch{"to-a-dying-rank"};
    auto writer = csp::process("writer", [](csp::ChannelOut<std::int64_t> out) {
        for (std::int64_t i = 0;; ++i) out(i);
    });
    auto dying = csp::process("dying", [](csp::ChannelIn<std::int64_t> in) {
        for (int i = 0; i < 100; ++i) in();
        std::raise(SIGKILL);
    });
    csp::Parallel(csp::on_rank(0, writer(ch.writer())), csp::on_rank(world.size() - 1, dying(ch.reader())));
    std::puts("not reached");
    return 0;
}
