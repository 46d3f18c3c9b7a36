// csp::Barrier and csp::BarrierEnd: phases never overlap, enrol and resign
// churn, poison wakes every waiter, the unwinding rule, deadlock reports.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <string>
#include <vector>

using Catch::Contains;

TEST_CASE("no member passes phase k before every member has arrived at it (8 members x 1000 phases)",
          "[barrier]") {
    constexpr int members = 8, phases = 1000;
    csp::Barrier barrier{"phases"};
    std::vector<std::atomic<int>> arrived(phases);
    std::atomic<int> early{0};
    auto member = csp::process("member", [&](csp::BarrierEnd end) {
        for (int k = 0; k < phases; ++k) {
            arrived[k].fetch_add(1);
            end.sync();
            if (arrived[k].load() != members) early.fetch_add(1);
        }
    });
    std::vector<csp::Process<>> all;
    for (int i = 0; i < members; ++i) all.push_back(member(barrier.end()));
    csp::Parallel(std::move(all));
    CHECK(early == 0);
    for (int k = 0; k < phases; k += 97) CHECK(arrived[k] == members);
}

TEST_CASE("a member that resigns lets the others go on; one that enrols later takes part", "[barrier]") {
    csp::Barrier barrier{"churn"};
    std::atomic<int> passed{0};
    auto stays = csp::process("stays", [&](csp::BarrierEnd end) {
        for (int k = 0; k < 200; ++k) {
            end.sync();
            ++passed;
        }
    });
    auto leaves = csp::process("leaves", [&](csp::BarrierEnd end) {
        for (int k = 0; k < 50; ++k) end.sync();
        end.resign();  // the others' next phases no longer wait for it
    });
    auto joins_late = csp::process("joins-late", [&](csp::BarrierEnd end) {
        // A copy enrols too: this member counts twice while `twin` lives.
        for (int k = 0; k < 20; ++k) {
            csp::BarrierEnd twin = end;
            twin.resign();
            end.sync();
        }
    });
    csp::Parallel(stays(barrier.end()), stays(barrier.end()), leaves(barrier.end()));
    CHECK(passed == 400);
    passed = 0;
    csp::Parallel(stays(barrier.end()), joins_late(barrier.end()), leaves(barrier.end()));
    CHECK(passed == 200);
}

TEST_CASE("poison wakes every member waiting at a barrier, and later syncs throw", "[barrier][poison]") {
    csp::Barrier barrier{"poisoned-barrier"};
    auto waiter = csp::process("waiter", [](csp::BarrierEnd end) {
        try {
            end.sync();
        } catch (const csp::ChannelPoisonException&) {
            try {
                end.sync();
            } catch (const csp::ChannelPoisonException&) {
                return 2;
            }
            return 1;
        }
        return 0;
    });
    auto poisoner = csp::process("poisoner", [](csp::BarrierEnd end) {
        csp::sleep(std::chrono::milliseconds(50));
        end.poison();
    });
    auto [a, b, c, nothing] = csp::Parallel(waiter(barrier.end()), waiter(barrier.end()), waiter(barrier.end()),
                                            poisoner(barrier.end()));
    (void)nothing;
    CHECK(a + b + c == 6);
}

TEST_CASE("barrier ends follow the unwinding rule: a failing member poisons, a retiring one resigns",
          "[barrier][poison]") {
    SECTION("an ordinary exception poisons the barrier") {
        csp::Barrier barrier{"unwind-poison"};
        auto failing = csp::process("failing", [](csp::BarrierEnd end) {
            (void)end;
            throw std::runtime_error("deliberately");
        });
        auto waiting = csp::process("waiting", [](csp::BarrierEnd end) {
            try {
                end.sync();
            } catch (const csp::ChannelPoisonException&) {
                return 1;
            }
            return 0;
        });
        try {
            csp::Parallel(failing(barrier.end()), waiting(barrier.end()));
            FAIL("no ProcessError");
        } catch (const csp::ProcessError& e) {
            CHECK(std::string(e.what()).find("deliberately") != std::string::npos);
        }
    }
    SECTION("a retire resigns: the others' phase ends without it") {
        csp::Barrier barrier{"unwind-retire"};
        csp::Channel<int> gone{"gone"};
        auto retiring = csp::process("retiring", [](csp::BarrierEnd end, csp::ChannelIn<int> in) {
            (void)end;
            in();  // retired at once: the process ends, and its barrier end resigns
        });
        auto waiting = csp::process("waiting", [](csp::BarrierEnd end) {
            end.sync();
            return 1;
        });
        gone.writer().retire();
        auto [nothing, synced] = csp::Parallel(retiring(barrier.end(), gone.reader()), waiting(barrier.end()));
        (void)nothing;
        CHECK(synced == 1);
    }
}

TEST_CASE("members all waiting at a barrier that cannot complete are a deadlock naming it", "[barrier][deadlock]") {
    csp::Barrier barrier{"stuck-barrier"};
    csp::BarrierEnd held_by_main = barrier.end();  // enrolled, never syncs
    auto member = csp::process("member", [](csp::BarrierEnd end) { end.sync(); });
    try {
        csp::Parallel(member(barrier.end()), member(barrier.end()));
        FAIL("no DeadlockError");
    } catch (const csp::DeadlockError& e) {
        CHECK_THAT(e.what(), Contains("stuck-barrier"));
    }
    held_by_main.resign();
}

TEST_CASE("misuse of barrier ends is a clear error", "[barrier][errors]") {
    csp::BarrierEnd empty;
    CHECK_THROWS_AS(empty.sync(), csp::ChannelEndError);
    csp::Barrier barrier{"misused"};
    csp::BarrierEnd end = barrier.end();
    end.resign();
    CHECK_THROWS_WITH(end.sync(), Contains("after it resigned"));
    // Alone, a sync passes at once: the phase waited only for this end.
    csp::BarrierEnd alone = barrier.end();
    alone.sync();
    alone.sync();
}

TEST_CASE("plain threads and fibers sync at one barrier", "[barrier][threads]") {
    constexpr int phases = 300;
    csp::Barrier barrier{"mixed"};
    std::atomic<int> in_phase[phases] = {};
    std::atomic<int> early{0};
    auto body = [&](csp::BarrierEnd end) {
        for (int k = 0; k < phases; ++k) {
            in_phase[k].fetch_add(1);
            end.sync();
            if (in_phase[k].load() != 4) early.fetch_add(1);
        }
    };
    // Every end enrolled before anyone syncs (else the first members to
    // start would pass phases without the others).
    csp::BarrierEnd t1 = barrier.end(), t2 = barrier.end(), f1 = barrier.end(), f2 = barrier.end();
    std::thread a(body, std::move(t1)), b(body, std::move(t2));
    auto fiber = csp::process("fiber", body);
    csp::Parallel(fiber(std::move(f1)), fiber(std::move(f2)));
    a.join();
    b.join();
    CHECK(early == 0);
}
