// csp::BarrierGuard, the alting barrier (JCSP's AltingBarrier): it fires in
// every enrolled member together, only when all offer it or sync; it mixes
// with channel guards, skip and timeouts and with plain sync(); poison and
// resign reach choices offering it; a network that can never complete a
// phase is a deadlock naming the barrier. Then JCSP's examples: a grid of
// processes alting over shared barriers and their own channels, and dining
// philosophers whose forks are alting barriers.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Catch::Contains;

TEST_CASE("a barrier guard fires in all members together: phases never overlap (8 members x 500 phases)",
          "[alting-barrier]") {
    constexpr int members = 8, phases = 500;
    csp::Barrier barrier{"alting-phases"};
    csp::Channel<int> quiet{"quiet"};
    std::vector<std::atomic<int>> arrived(phases + 1);
    std::atomic<int> early{0}, other{0};
    // Even members choose between the barrier and a channel nobody writes;
    // odd ones sync plainly every other phase.
    auto member = csp::process("member", [&](int id, csp::BarrierEnd end, csp::ChannelIn<int> in) {
        csp::Alternation alt{csp::InputGuard(in), csp::BarrierGuard(end)};
        for (int k = 0; k < phases; ++k) {
            arrived[k].fetch_add(1);
            if (id % 2 == 1 && k % 2 == 0) {
                end.sync();
            } else if (alt.fair_execute() != 1) {
                other.fetch_add(1);
            }
            if (arrived[k].load() != members) early.fetch_add(1);
        }
    });
    std::vector<csp::Process<>> all;
    for (int i = 0; i < members; ++i) all.push_back(member(i, barrier.end(), quiet.reader()));
    auto keep = quiet.writer();  // (nobody writes: the input guard never fires)
    csp::Parallel(std::move(all));
    CHECK(early == 0);
    CHECK(other == 0);
}

TEST_CASE("a barrier guard is not ready while a member is elsewhere: skip and timeout fire instead",
          "[alting-barrier]") {
    csp::Barrier barrier{"not-ready"};
    csp::BarrierEnd mine = barrier.end(), theirs = barrier.end();
    auto r = csp::PriSelect(csp::BarrierGuard(mine), csp::SkipGuard());
    CHECK(r.index() == 1);
    csp::Alternation alt{csp::BarrierGuard(mine), csp::TimeoutGuard(5ms)};
    CHECK(alt.pri_execute() == 1);
    // Disabled, it takes no part; with the other member syncing it fires.
    auto other = csp::process([](csp::BarrierEnd end) { end.sync(); });
    int fired = -1;
    auto chooser = csp::process([&](csp::BarrierEnd end) {
        csp::Alternation a{csp::BarrierGuard(end).when(false), csp::TimeoutGuard(1ms)};
        CHECK(a.pri_execute() == 1);
        fired = static_cast<int>(csp::PriSelect(csp::BarrierGuard(end), csp::TimeoutGuard(10s)).index());
    });
    csp::Parallel(other(std::move(theirs)), chooser(std::move(mine)));
    CHECK(fired == 0);
}

TEST_CASE("a choice offering a barrier also takes its channels: a value read instead, nothing lost",
          "[alting-barrier]") {
    constexpr int rounds = 300;
    csp::Barrier barrier{"barrier-or-channel"};
    csp::Channel<int> data{"barrier-data"};
    int barrier_fired = 0, read = 0, sum = 0;
    auto writer = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 1; i <= rounds; ++i) out(i);
    });
    auto syncer = csp::process([](csp::BarrierEnd end) {
        for (int k = 0; k < rounds; ++k) end.sync();
    });
    // The chooser takes the barrier or a value, as they come, until it has
    // had the syncer's every phase; then it resigns and reads the rest.
    auto chooser = csp::process([&](csp::BarrierEnd end, csp::ChannelIn<int> in) {
        csp::Alternation alt{csp::BarrierGuard(end, [&] { ++barrier_fired; }),
                             csp::InputGuard(in, [&](int v) {
                                 ++read;
                                 sum += v;
                             })};
        for (;;) {
            alt.fair_execute();
            if (barrier_fired == rounds && read == rounds) break;
            if (barrier_fired == rounds) {
                end.resign();
                for (; read < rounds; ++read) sum += in();
                break;
            }
        }
    });
    csp::Parallel(writer(data.writer()), chooser(barrier.end(), data.reader()), syncer(barrier.end()));
    CHECK(barrier_fired == rounds);
    CHECK(read == rounds);
    CHECK(sum == rounds * (rounds + 1) / 2);
}

TEST_CASE("poison reaches choices offering a barrier; resign completes a phase they wait for",
          "[alting-barrier][poison]") {
    SECTION("poison") {
        csp::Barrier barrier{"alting-poison"};
        auto offerer = csp::process([](csp::BarrierEnd end) {
            try {
                csp::Alternation alt{csp::BarrierGuard(end)};
                alt.execute();
            } catch (const csp::ChannelPoisonException& e) {
                return std::string(e.what()).find("alting-poison") != std::string::npos ? 1 : 2;
            }
            return 0;
        });
        auto poisoner = csp::process([](csp::BarrierEnd end) {
            csp::sleep(20ms);
            end.poison();
        });
        auto [a, b, nothing] = csp::Parallel(offerer(barrier.end()), offerer(barrier.end()), poisoner(barrier.end()));
        (void)nothing;
        CHECK(a == 1);
        CHECK(b == 1);
    }
    SECTION("resign") {
        csp::Barrier barrier{"alting-resign"};
        auto offerer = csp::process([](csp::BarrierEnd end) {
            return static_cast<int>(csp::PriSelect(csp::BarrierGuard(end)).index()) + 1;
        });
        auto leaver = csp::process([](csp::BarrierEnd end) {
            csp::sleep(20ms);
            end.resign();
        });
        auto [a, b, nothing] = csp::Parallel(offerer(barrier.end()), offerer(barrier.end()), leaver(barrier.end()));
        (void)nothing;
        CHECK(a == 1);
        CHECK(b == 1);
    }
}

TEST_CASE("choices offering a barrier one member never reaches are a deadlock naming it", "[alting-barrier][deadlock]") {
    csp::Barrier barrier{"never-complete"};
    auto offerer = csp::process([](csp::BarrierEnd end) { csp::PriSelect(csp::BarrierGuard(end)); });
    const std::string report = csp_test::deadlock_report([&] {
        csp::BarrierEnd absent = barrier.end();  // enrolled, and never offers
        csp::Parallel(offerer(barrier.end()), offerer(barrier.end()));
    });
    CAPTURE(report);
    CHECK_THAT(report, Contains("never-complete"));
}

// JCSP's AltingBarrier example, a grid: processes in a ring, each enrolled on
// the barrier it shares with its right neighbour and the one it shares with
// its left, alting over both and over its own channel (fed by a ticker).
// Each barrier fires only with both its members; counts must agree.
TEST_CASE("a ring of processes alting over the barriers they share and their own channels", "[alting-barrier]") {
    constexpr int n = 6, ticks = 200;
    std::vector<csp::Barrier> shared;
    for (int i = 0; i < n; ++i) shared.emplace_back("ring-" + std::to_string(i));
    std::vector<csp::Channel<int>> feeds;
    for (int i = 0; i < n; ++i) feeds.emplace_back("feed-" + std::to_string(i));
    std::vector<std::atomic<int>> fired_left(n), fired_right(n), got(n);
    csp::Barrier all_done{"ring-done"};
    auto node = csp::process("node", [&](int i, csp::BarrierEnd left, csp::BarrierEnd right, csp::ChannelIn<int> in,
                                         csp::BarrierEnd done) {
        bool fed = true;
        // (One Alternation for the whole loop: fair_execute's rotation
        // lives in it, and a fresh one would always prefer the barriers.)
        csp::Alternation alt{csp::BarrierGuard(left, [&] { fired_left[i].fetch_add(1); }),
                             csp::BarrierGuard(right, [&] { fired_right[i].fetch_add(1); }),
                             csp::InputGuard(in, [&](int) { got[i].fetch_add(1); })};
        while (fed) {
            try {
                alt.fair_execute();
            } catch (const csp::ChannelPoisonException&) {
                fed = false;
            }
        }
        // Resigned only when every node is out of its loop: a node alone
        // on a barrier would fire it by itself.
        done.sync();
        left.resign();
        right.resign();
    });
    auto ticker = csp::process("ticker", [&](std::vector<csp::ChannelOut<int>> outs) {
        for (int t = 0; t < ticks; ++t) {
            for (auto& out : outs) out(t);
        }
        for (auto& out : outs) out.poison();
    });
    std::vector<csp::Process<>> all;
    std::vector<csp::ChannelOut<int>> outs;
    for (int i = 0; i < n; ++i) {
        all.push_back(node(i, shared[i].end(), shared[(i + 1) % n].end(), feeds[i].reader(), all_done.end()));
        outs.push_back(feeds[i].writer());
    }
    all.push_back(ticker(std::move(outs)));
    csp::Parallel(std::move(all));
    int total = 0;
    for (int i = 0; i < n; ++i) {
        CAPTURE(i);
        CHECK(got[i] == ticks);
        // Barrier i is node i's left and node i-1's right: fired together.
        CHECK(fired_left[i] == fired_right[(i + n - 1) % n]);
        total += fired_left[i];
    }
    CHECK(total > 0);
}

// Dining philosophers: fork i is a process enrolled with philosopher i and
// philosopher i+1 on two 2-member barriers; it alts over both ("picked up by
// the left one or by the right one"), then syncs the same barrier again when
// it is put down. Philosopher n-1 picks its right fork first (no deadlock).
// Neighbours never eat at once, and everybody eats.
TEST_CASE("dining philosophers whose forks are alting barriers", "[alting-barrier]") {
    constexpr int n = 5, meals = 100;
    std::vector<csp::Barrier> left_of, right_of;  // fork i with philosopher i / with philosopher i-1
    for (int i = 0; i < n; ++i) {
        left_of.emplace_back("fork-" + std::to_string(i) + "-phil-" + std::to_string(i));
        right_of.emplace_back("fork-" + std::to_string(i) + "-phil-" + std::to_string((i + n - 1) % n));
    }
    std::vector<std::atomic<int>> eating(n), eaten(n);
    std::atomic<int> clashes{0};
    auto fork = csp::process("fork", [](csp::BarrierEnd a, csp::BarrierEnd b) {
        try {
            for (;;) {
                const auto chosen = csp::FairSelect(csp::BarrierGuard(a), csp::BarrierGuard(b)).index();
                (chosen == 0 ? a : b).sync();  // put down
            }
        } catch (const csp::ChannelPoisonException&) {
        }
    });
    csp::Channel<int> finished{"finished"};
    csp::Channel<int> release{"release"};
    auto philosopher = csp::process("philosopher", [&](int i, csp::BarrierEnd first, csp::BarrierEnd second,
                                                         csp::ChannelOut<int> done, csp::ChannelIn<int> until) {
        for (int m = 0; m < meals; ++m) {
            first.sync();   // picks up
            second.sync();
            eating[i] = 1;
            if (eating[(i + 1) % n] || eating[(i + n - 1) % n]) clashes.fetch_add(1);
            csp::yield();
            eating[i] = 0;
            eaten[i].fetch_add(1);
            second.sync();  // puts down
            first.sync();
        }
        done(i);
        // Its ends stay enrolled until the forks are poisoned: a fork left
        // alone on a barrier would fire it by itself, for ever.
        until();
    });
    std::vector<csp::Process<>> all;
    for (int i = 0; i < n; ++i) all.push_back(fork(left_of[i].end(), right_of[i].end()));
    for (int i = 0; i < n; ++i) {
        // My left fork is fork i (its left_of barrier), my right fork is
        // fork i+1 (its right_of barrier).
        csp::BarrierEnd l = left_of[i].end(), r = right_of[(i + 1) % n].end();
        if (i == n - 1) all.push_back(philosopher(i, std::move(r), std::move(l), finished.writer(), release.reader()));
        else all.push_back(philosopher(i, std::move(l), std::move(r), finished.writer(), release.reader()));
    }
    // Forks run until the philosophers have all eaten: then the closer
    // poisons their barriers (through handles: it is not enrolled).
    std::vector<csp::Barrier> handles = left_of;
    handles.insert(handles.end(), right_of.begin(), right_of.end());
    auto closer = csp::process("closer", [&](csp::ChannelIn<int> finished, csp::ChannelOut<int> go) {
        for (int i = 0; i < n; ++i) finished();
        for (auto& h : handles) h.poison();
        go.retire();  // the philosophers go (and resign)
    });
    all.push_back(closer(finished.reader(), release.writer()));
    csp::Parallel(std::move(all));
    CHECK(clashes == 0);
    for (int i = 0; i < n; ++i) CHECK(eaten[i] == meals);
}

TEST_CASE("plain threads offering a barrier guard and fibers syncing: phases never overlap",
          "[alting-barrier][threads]") {
    constexpr int phases = 300;
    csp::Barrier barrier{"threads-and-fibers-alting"};
    std::vector<std::atomic<int>> arrived(phases);
    std::atomic<int> early{0};
    const auto arrive = [&](int k) { arrived[k].fetch_add(1); };
    const auto check = [&](int k) {
        if (arrived[k].load() != 4) early.fetch_add(1);
    };
    // Every end is enrolled before anyone syncs.
    std::vector<csp::BarrierEnd> ends;
    for (int i = 0; i < 4; ++i) ends.push_back(barrier.end());
    std::thread t1([&, end = std::move(ends[0])]() mutable {
        csp::Alternation alt{csp::BarrierGuard(end), csp::TimeoutGuard(10s)};
        for (int k = 0; k < phases; ++k) {
            arrive(k);
            if (alt.pri_execute() != 0) early.fetch_add(1000);
            check(k);
        }
    });
    std::thread t2([&, end = std::move(ends[1])]() mutable {
        for (int k = 0; k < phases; ++k) {
            arrive(k);
            end.sync();
            check(k);
        }
    });
    auto fiber = csp::process([&](csp::BarrierEnd end, bool guard) {
        for (int k = 0; k < phases; ++k) {
            arrive(k);
            if (guard) csp::PriSelect(csp::BarrierGuard(end));
            else end.sync();
            check(k);
        }
    });
    csp::Parallel(fiber(std::move(ends[2]), true), fiber(std::move(ends[3]), false));
    t1.join();
    t2.join();
    CHECK(early == 0);
}

// A choice with two guards on one barrier is one member: two such choices
// complete their phases (counted twice, each fire would fail on the other's
// second offer and release it, for ever).
TEST_CASE("a choice with two guards on the same barrier is one member", "[alting-barrier]") {
    constexpr int phases = 200;
    csp::Barrier barrier{"twice-offered"};
    std::atomic<int> first{0}, second{0};
    auto member = csp::process([&](csp::BarrierEnd end) {
        for (int k = 0; k < phases; ++k) {
            const auto chosen = csp::FairSelect(csp::BarrierGuard(end), csp::BarrierGuard(end)).index();
            (chosen == 0 ? first : second).fetch_add(1);
        }
    });
    csp::Parallel(member(barrier.end()), member(barrier.end()));
    CHECK(first + second == 2 * phases);
}

// The deadlock breaker ends a member's sync without dequeueing it: until that
// member has run, it must not count as arrived, or another member's sync
// would end the phase without it.
TEST_CASE("a sync the deadlock breaker ended does not count as arrived", "[alting-barrier][deadlock]") {
    csp::Barrier barrier{"broken-sync"};
    std::atomic<int> synced{0}, early{0};
    std::atomic<bool> arrived_again{false};
    auto syncer = csp::process([&](csp::BarrierEnd end) {
        try {
            end.sync();  // with the other member blocked elsewhere: a deadlock
        } catch (const csp::DeadlockError&) {
        }
        arrived_again = true;
        end.sync();
        synced.fetch_add(1);
    });
    auto reader = csp::process([&](csp::BarrierEnd end, csp::ChannelIn<int> in) {
        try {
            in();
        } catch (const csp::DeadlockError&) {
        }
        end.sync();
        if (!arrived_again) early.fetch_add(1);  // a phase without the syncer
        synced.fetch_add(1);
    });
    for (int round = 0; round < 20; ++round) {
        arrived_again = false;
        csp::Channel<int> nobody{"nobody-writes-here"};
        auto keep = nobody.writer();
        // (Both orders of waking, by turns.)
        if (round % 2) csp::Parallel(syncer(barrier.end()), reader(barrier.end(), nobody.reader()));
        else csp::Parallel(reader(barrier.end(), nobody.reader()), syncer(barrier.end()));
    }
    CHECK(synced == 40);
    CHECK(early == 0);
}
