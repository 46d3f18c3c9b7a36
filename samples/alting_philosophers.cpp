// alting_philosophers: dining philosophers with no butler and no
// left-handed philosopher: a philosopher picks up both forks at once, as one
// three-way event (JCSP's AltingBarrier example).
//
//   pick_up[i] is a barrier of three members: philosopher i and the two
//   forks beside it (fork i on its left, fork i+1 on its right); put_down[i]
//   likewise. A philosopher syncs on pick_up[i] (it wants both forks) and,
//   after eating, on put_down[i]. A fork offers both its neighbours'
//   pick_up barriers in a choice (csp::BarrierGuard) and, once one fires,
//   syncs on that neighbour's put_down.
//
//   A pick_up phase ends only when the philosopher and both forks take part,
//   so a philosopher holds both forks or none: the deadlock of the story
//   (everyone holding a left fork, waiting for a right one) cannot happen,
//   and no butler is needed. A fork chooses fairly, so neither neighbour
//   can keep it from the other for ever.
//
// When every philosopher has eaten kMeals meals they sync on `done` (a
// barrier of the five), and each then poisons its pick_up barrier: the
// forks, offering those, end. No process is left blocked.
//
// Prints "philosopher i ate 1000 meals" for i = 0..4, then that no two
// neighbours ever ate at once.
#include <csp/csp.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

namespace {
constexpr int kPhilosophers = 5, kMeals = 1000;
}  // namespace

int main() {
    std::vector<csp::Barrier> pick_up, put_down;
    for (int i = 0; i < kPhilosophers; ++i) {
        pick_up.emplace_back("pick-up-" + std::to_string(i));
        put_down.emplace_back("put-down-" + std::to_string(i));
    }
    csp::Barrier done{"done"};
    std::array<std::atomic<int>, kPhilosophers> eating{}, meals{};
    std::atomic<int> clashes{0};

    auto philosopher = csp::process("philosopher", [&](int i, csp::BarrierEnd up, csp::BarrierEnd down,
                                                         csp::BarrierEnd all_done) {
        for (int m = 0; m < kMeals; ++m) {
            up.sync();  // both forks, at once
            eating[i] = 1;
            if (eating[(i + 1) % kPhilosophers] || eating[(i + kPhilosophers - 1) % kPhilosophers]) ++clashes;
            csp::yield();  // eats (lets the others run meanwhile)
            eating[i] = 0;
            ++meals[i];
            down.sync();  // puts both down
        }
        all_done.sync();
        up.poison();  // the forks beside it stop offering
    });
    auto fork = csp::process("fork", [](csp::BarrierEnd up_left, csp::BarrierEnd down_left, csp::BarrierEnd up_right,
                                        csp::BarrierEnd down_right) {
        // (The philosopher on its left is the one whose right fork it is.)
        csp::Alternation alt{csp::BarrierGuard(up_left, [&] { down_left.sync(); }),
                             csp::BarrierGuard(up_right, [&] { down_right.sync(); })};
        for (;;) alt.fair_execute();  // ends when a pick_up barrier is poisoned
    });

    std::vector<csp::Process<>> all;
    for (int i = 0; i < kPhilosophers; ++i) {
        all.push_back(philosopher(i, pick_up[i].end(), put_down[i].end(), done.end()));
        // Fork i lies between philosopher i-1 (on its left) and i (on its right).
        const int left = (i + kPhilosophers - 1) % kPhilosophers;
        all.push_back(fork(pick_up[left].end(), put_down[left].end(), pick_up[i].end(), put_down[i].end()));
    }
    csp::Parallel(std::move(all));

    for (int i = 0; i < kPhilosophers; ++i) std::printf("philosopher %d ate %d meals\n", i, meals[i].load());
    std::printf("%s\n", clashes == 0 ? "no two neighbours ever ate at once" : "NEIGHBOURS ATE AT ONCE");
}
