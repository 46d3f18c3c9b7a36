// Chapter 7: ranks. One network over the ranks of an MPI job.
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

// Every rank runs main (SPMD) and makes the same processes and channels in
// the same order; csp matches the channels across ranks by that order.
auto source = csp::process("source", [](csp::ChannelOut<int> out) {
    for (int i = 1; i <= 12; ++i) out(i);
});  // (its end leaves here: the workers see retire once the jobs are taken)

auto worker = csp::process("worker", [](csp::ChannelIn<int> in, csp::ChannelOut<long> out) {
    int done = 0;
    try {
        for (;;) {
            const long job = in();
            out(job * job);
            ++done;
        }
    } catch (const csp::ChannelRetireException&) {
    }
    return done;
});

auto sum = csp::process("sum", [](csp::ChannelIn<long> in) {
    long total = 0;
    try {
        for (;;) total += in();
    } catch (const csp::ChannelRetireException&) {
    }
    return total;  // (returned on every rank: Parallel gathers all results)
});

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};  // (alone, without mpirun: one rank)
    csp::Channel<int> jobs{"jobs"};
    csp::Channel<long> squares{"squares", csp::buffer(4)};

    // on_rank places a process on one rank, spread places a list of them
    // round-robin; the channels are any-to-any across ranks, and retire is
    // counted over all of them.
    auto [nothing, done, total] = csp::Parallel(csp::on_rank(0, source(jobs.writer())),
                                                csp::spread(worker(jobs.reader(), squares.writer()) * 6),
                                                csp::on_rank(world.size() - 1, sum(squares.reader())));
    int jobs_done = 0;
    for (int n : done) jobs_done += n;

    // A process that throws on one rank is a ProcessError on every rank.
    std::string caught;
    try {
        csp::Parallel(csp::on_rank(world.size() - 1, csp::process("failing", [] { throw std::runtime_error("no luck"); })()));
    } catch (const csp::ProcessError& e) {
        caught = e.what();
    }

    if (world.rank() == 0) {  // (every rank has the results: one prints)
        std::printf("%d ranks, 6 workers, %d jobs done\n", world.size(), jobs_done);
        std::printf("the sum of the squares of 1..12 is %ld\n", total);
        std::printf("caught: %s\n", caught.c_str());
    }
}
