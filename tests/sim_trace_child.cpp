// sim_trace_child SEED: a simulated network that fails on its last run,
// for check_sim_trace.py, which runs this with CSP_TRACE set and compares
// the traces of the failing run. Exits 0 when the check failed as it must.
#include <csp/csp.hpp>
#include <csp/sim.hpp>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::uint64_t seed = std::strtoull(argv[1], nullptr, 10);
    int runs = 0;
    const auto body = [&runs] {
        csp::Channel<int> values{"values", csp::buffer(2)}, extra{"extra"};
        auto writer = csp::process("writer", [](csp::ChannelOut<int> out, int tag) {
            for (int i = 0; i < 4; ++i) out(tag * 10 + i);
        });
        auto reader = csp::process("reader", [](csp::ChannelIn<int> in, csp::ChannelIn<int> more) {
            int sum = 0;
            for (int k = 0; k < 12; ++k) {
                auto r = csp::AltSelect(csp::InputGuard(in), csp::InputGuard(more),
                                        csp::TimeoutGuard(std::chrono::milliseconds(5)));
                if (r.index() == 0) sum += std::get<0>(r);
                else if (r.index() == 1) sum += std::get<1>(r);
                else csp::sleep(std::chrono::milliseconds(1));
            }
            return sum;
        });
        auto [a, b, c, sum] = csp::Parallel(writer(values.writer(), 1), writer(values.writer(), 2),
                                            writer(extra.writer(), 3), reader(values.reader(), extra.reader()));
        (void)a, (void)b, (void)c, (void)sum;
        if (++runs == 3) throw std::runtime_error("the third run fails");
    };
    try {
        csp::sim::check_random(body, {.iterations = 3, .seed = seed});
    } catch (const csp::sim::Failure&) {
        return 0;
    }
    std::fputs("the check did not fail\n", stderr);
    return 1;
}
