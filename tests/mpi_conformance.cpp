// The channel conformance suite (conformance.cpp) over MPI ranks:
// run_network places body i on rank i % ranks with csp::on_rank, so the
// PyCSP matrix, retire, poison and the unwinding rule are checked with
// partners on different ranks. Every rank runs every test case (SPMD) and
// checks what Parallel returned there. tests/meson.build runs it on 1, 2
// and 4 ranks. Left out: channel_ends.cpp, whose cases use both ends from
// main itself (on every rank at once, under SPMD: not one network), and the
// alternation suite's scenarios, whose bodies share the test's variables by
// reference (alternation across ranks is tested in mpi.cpp, "[alt]").
#include "support.hpp"

#include <csp/mpi.hpp>

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

namespace {

csp::Process<csp_test::Seen> on_rank_by_turns(std::size_t i, csp::Process<csp_test::Seen> p) {
    return csp::on_rank(static_cast<int>(i % static_cast<std::size_t>(csp::mpi::size())), std::move(p));
}

}  // namespace

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    csp_test::set_rank_placer(&on_rank_by_turns, world.rank(), world.size());
    return Catch::Session().run(argc, argv);
}
