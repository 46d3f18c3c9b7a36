// Chapter 4: barriers: processes that move in steps together.
#include <csp/csp.hpp>

#include <cstdio>
#include <vector>

int main() {
    // Three workers each fill their cell of a row, step by step. No one
    // starts step k + 1 before all have finished step k: they all sync on
    // one barrier between steps (a BarrierEnd is enrolled while it lives).
    constexpr int kWorkers = 3, kSteps = 4;
    csp::Barrier step{"step"};
    std::vector<std::vector<int>> done(kSteps, std::vector<int>(kWorkers, -1));

    auto worker = csp::process("worker", [&done](int me, csp::BarrierEnd sync) {
        for (int k = 0; k < kSteps; ++k) {
            // Every cell of the previous step is filled: check it.
            for (int other = 0; k > 0 && other < kWorkers; ++other) {
                if (done[k - 1][other] != k - 1) std::printf("worker %d ran ahead!\n", me);
            }
            done[k][me] = k;
            sync.sync();
        }
    });
    std::vector<csp::Process<>> workers;
    for (int i = 0; i < kWorkers; ++i) workers.push_back(worker(i, step.end()));
    csp::Parallel(std::move(workers));
    std::printf("%d workers went through %d steps in lock-step\n", kWorkers, kSteps);

    // A BarrierGuard puts a barrier into a choice: here a ticker that takes
    // part in each tick of the counter's until 'stop' comes instead.
    csp::Barrier tick{"tick"};
    csp::Channel<int> stop{"stop"};
    auto ticker = csp::process("ticker", [](csp::BarrierEnd t, csp::ChannelIn<int> s) {
        int ticks = 0;
        for (bool going = true; going;) {
            csp::Alternation alt{csp::InputGuard(s, [&](int) { going = false; }), csp::BarrierGuard(t, [&] { ++ticks; })};
            alt.pri_execute();
        }
        return ticks;
    });
    auto counter = csp::process("counter", [](csp::BarrierEnd t, csp::ChannelOut<int> s) {
        for (int i = 0; i < 5; ++i) t.sync();
        s(0);
    });  // (its end resigns as it goes: leaving a barrier is resigning)
    auto [ticks, nothing] = csp::Parallel(ticker(tick.end(), stop.reader()), counter(tick.end(), stop.writer()));
    std::printf("the ticker saw %d ticks, then 'stop'\n", ticks);
}
