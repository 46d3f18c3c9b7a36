// hello_world: PyCSP's first network example, written the csp way, with its
// processes spread over MPI ranks.
//
//     @process                                  @process
//     def source(chan_out):                     def sink(chan_in):
//         for i in range(10):                       while True:
//             chan_out("Hello world (%d)\n" % i)        sys.stdout.write(chan_in())
//         retire(chan_out)
//
//     chan = Channel()
//     Parallel(5 * source(-chan), 5 * sink(+chan))
//
// In PyCSP the channel becomes a network channel once processes are placed
// on other hosts; here it is one channel of the whole job: five sources and
// five sinks spread round-robin over the ranks (csp::spread), any-to-any
// across them. Each source's end leaves when it is done (PyCSP's retire), and
// the sinks end when every source on every rank has. Each sink prints what
// it reads (mpirun gathers every rank's output) and says how many lines it
// printed; rank 0 adds them up: 50, however many ranks ran it.
//
//   mpirun -np 4 build/samples/mpi-hello_world     (or alone: one rank)
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include <cstdio>
#include <string>

namespace {

auto source = csp::process("source", [](csp::ChannelOut<std::string> out, int id) {
    for (int i = 0; i < 10; ++i) out("Hello world (" + std::to_string(id) + "." + std::to_string(i) + ")");
});  // (its end leaves here: PyCSP's retire(chan_out))

auto sink = csp::process("sink", [](csp::ChannelIn<std::string> in) {
    int lines = 0;
    try {
        for (;;) {
            const std::string line = in() + " from rank " + std::to_string(csp::mpi::rank()) + "\n";
            std::fputs(line.c_str(), stdout);  // (one call per line: lines of different sinks never mix)
            ++lines;
        }
    } catch (const csp::ChannelRetireException&) {
    }
    std::fflush(stdout);
    return lines;
});

}  // namespace

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    csp::Channel<std::string> chan{"hello"};
    std::vector<csp::Process<void>> sources;
    for (int id = 0; id < 5; ++id) sources.push_back(source(chan.writer(), id));
    auto [nothing, printed] = csp::Parallel(csp::spread(std::move(sources)), csp::spread(sink(chan.reader()) * 5));
    (void)nothing;
    if (world.rank() == 0) {
        int total = 0;
        for (int n : printed) total += n;
        std::printf("%d lines printed by %zu sinks on %d ranks\n", total, printed.size(), world.size());
    }
    return 0;
}
