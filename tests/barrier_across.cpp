// Barriers and alting barriers between OS processes: members in forked
// children and fibers here sync on one barrier, offer it in choices beside
// their channels, resign and poison it; a child that dies with an end
// poisons it (one that had resigned does not); a barrier reached from a
// child it was never handed to is a clear error; children killed at random
// moments of alting-barrier traffic leave nobody hanging.
//
// Members of different OS processes see one another's arrivals through a
// board in memory they all share (MAP_SHARED, made before the forks).
#include "support.hpp"

#include "channels/barrier.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

using namespace std::chrono_literals;
using Catch::Contains;
using csp_test::unreaped_children;

namespace {

constexpr int kMaxPhases = 2000;

// Board: arrivals per phase and what members saw, shared by every OS
// process of a test.
struct Board {
    std::atomic<int> arrived[kMaxPhases + 1];
    std::atomic<int> early{0};   // members that passed a phase before all arrived
    std::atomic<int> other{0};   // choices that fired something else than the barrier
    std::atomic<int> poisoned{0};
    std::atomic<int> victim_pid{0};
};

Board* new_board() {
    void* m = mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    return ::new (m) Board;
}

void free_board(Board* b) { munmap(b, sizeof(Board)); }

// ends_with_os_death: Parallel threw for a child that died (its OSProcessError).
template <class F>
bool ends_with_os_death(F&& f) {
    try {
        f();
    } catch (const csp::ProcessError& e) {
        try {
            std::rethrow_exception(e.original());
        } catch (const csp::OSProcessError&) {
            return true;
        } catch (...) {
        }
        throw;
    }
    return false;
}

// core_of: the barrier core behind an end (through the guard protocol), for
// the tests that play a holder of its lock dying at a chosen point.
csp::channels::BarrierCore* core_of(csp::BarrierEnd& end) {
    csp::BarrierGuard guard(end);
    csp::detail::ChoiceSlot<csp::BarrierGuard> slot;
    return static_cast<csp::channels::BarrierCore*>(
        csp::detail::GuardAccess::record(guard, slot, false, csp::detail::Clock::time_point{}).slot);
}

// How the child of the repair test dies holding the barrier's lock.
enum class Dying : int { holding, after_poisoned, reserved_an_offer, reserving_an_offer };

}  // namespace

TEST_CASE("members in children and fibers here: no member passes phase k before all arrived (8 x 1000)",
          "[multiprocess][barrier]") {
    constexpr int phases = 1000;
    Board* board = new_board();
    csp::Barrier barrier{"across"};
    auto body = [](Board* b, csp::BarrierEnd end, int members) {
        for (int k = 0; k < phases; ++k) {
            b->arrived[k].fetch_add(1);
            end.sync();
            if (b->arrived[k].load() != members) b->early.fetch_add(1);
        }
    };
    auto child = csp::multiprocess("child-member", body);
    auto fiber = csp::process("fiber-member", body);
    csp::Parallel(child(board, barrier.end(), 8) * 4, fiber(board, barrier.end(), 8) * 4);
    CHECK(board->early.load() == 0);
    for (int k = 0; k < phases; k += 101) CHECK(board->arrived[k].load() == 8);
    CHECK(unreaped_children() == "");
    free_board(board);
}

TEST_CASE("a Barrier handle captured by a child makes ends there; one copied there enrols there",
          "[multiprocess][barrier]") {
    Board* board = new_board();
    csp::Barrier barrier{"handle-across"};
    // The child makes its own end from the handle, and a second one for a
    // while (two members then, both its own).
    auto child = csp::multiprocess("handle-child", [board, barrier] {
        csp::BarrierEnd end = barrier.end();
        board->poisoned.store(1);  // (here: "enrolled")
        for (int k = 0; k < 100; ++k) {
            csp::BarrierEnd twin = end;
            twin.resign();
            board->arrived[k].fetch_add(1);
            end.sync();
            if (board->arrived[k].load() != 2) board->early.fetch_add(1);
        }
    });
    auto here = csp::process("here", [board](csp::BarrierEnd end) {
        for (int k = 0; k < 100; ++k) {
            board->arrived[k].fetch_add(1);
            end.sync();
            if (board->arrived[k].load() != 2) board->early.fetch_add(1);
        }
    });
    // (The child's end enrols only once it runs: `here` alone must not end
    // phases before that, so a gate member stays until the child enrolled.)
    csp::BarrierEnd gate = barrier.end();
    auto opener = csp::process("opener", [board](csp::BarrierEnd g) {
        while (board->poisoned.load() == 0) csp::sleep(1ms);
        g.resign();
    });
    csp::Parallel(child(), here(barrier.end()), opener(std::move(gate)));
    CHECK(board->early.load() == 0);
    CHECK(board->arrived[99].load() == 2);
    free_board(board);
}

TEST_CASE("barrier guards across OS processes fire in all members together, beside their channels",
          "[multiprocess][alting-barrier]") {
    constexpr int members = 6, phases = 500;
    Board* board = new_board();
    csp::Barrier barrier{"alting-across"};
    csp::Channel<int> quiet{"quiet"};
    // Members choose between the barrier and a channel nobody writes (so
    // the barrier must fire); odd ones sync plainly every other phase.
    auto body = [](Board* b, int id, csp::BarrierEnd end, csp::ChannelIn<int> in) {
        csp::Alternation alt{csp::InputGuard(in), csp::BarrierGuard(end)};
        for (int k = 0; k < phases; ++k) {
            b->arrived[k].fetch_add(1);
            if (id % 2 == 1 && k % 2 == 0) {
                end.sync();
            } else if (alt.fair_execute() != 1) {
                b->other.fetch_add(1);
            }
            if (b->arrived[k].load() != members) b->early.fetch_add(1);
        }
    };
    auto child = csp::multiprocess("alting-child", body);
    auto fiber = csp::process("alting-fiber", body);
    std::vector<csp::Process<>> all;
    for (int i = 0; i < members; ++i) {
        all.push_back(i % 2 == 0 ? child(board, i, barrier.end(), quiet.reader())
                                 : fiber(board, i, barrier.end(), quiet.reader()));
    }
    auto keep = quiet.writer();  // (nobody writes: the input guard never fires)
    csp::Parallel(std::move(all));
    CHECK(board->early.load() == 0);
    CHECK(board->other.load() == 0);
    free_board(board);
}

TEST_CASE("a child choosing between a barrier and a channel: every value read once, every phase whole",
          "[multiprocess][alting-barrier]") {
    constexpr int values = 2000;
    csp::Barrier barrier{"tick"};
    csp::Channel<int> data{"data"};
    // The child takes values or ticks, whichever is ready; the ticker here
    // syncs `ticks` times, the writer writes `values` values. The child ends
    // when it has had both (it counts).
    auto chooser = csp::multiprocess("chooser", [](csp::BarrierEnd tick, csp::ChannelIn<int> in, int ticks) {
        long sum = 0;
        int got = 0, ticked = 0;
        csp::Alternation alt{csp::InputGuard(in, [&](int v) {
                                 sum += v;
                                 ++got;
                             }),
                             csp::BarrierGuard(tick, [&] { ++ticked; })};
        while (got < values || ticked < ticks) alt.fair_execute();
        return sum;
    });
    auto writer = csp::process("writer", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= values; ++i) out(i);
    });
    auto ticker = csp::process("ticker", [](csp::BarrierEnd tick, int ticks) {
        for (int k = 0; k < ticks; ++k) tick.sync();
    });
    auto [sum, _1, _2] = csp::Parallel(chooser(barrier.end(), data.reader(), 300), writer(data.writer()),
                                       ticker(barrier.end(), 300));
    CHECK(sum == static_cast<long>(values) * (values + 1) / 2);
}

TEST_CASE("poison crosses: a child's poison wakes members here, and poison here wakes a child's sync and offer",
          "[multiprocess][barrier][poison]") {
    Board* board = new_board();
    SECTION("from the child") {
        csp::Barrier barrier{"poisoned-by-child"};
        auto poisoner = csp::multiprocess("poisoner", [](csp::BarrierEnd end) {
            csp::sleep(20ms);
            end.poison();
        });
        auto waiter = csp::process("waiter", [board](csp::BarrierEnd end) {
            try {
                end.sync();
            } catch (const csp::ChannelPoisonException&) {
                board->poisoned.fetch_add(1);
            }
        });
        csp::Parallel(poisoner(barrier.end()), waiter(barrier.end()) * 3);
        CHECK(board->poisoned.load() == 3);
    }
    SECTION("from here") {
        csp::Barrier barrier{"poisoned-here"};
        csp::Channel<int> quiet{"quiet"};
        auto syncer = csp::multiprocess("syncer", [board](csp::BarrierEnd end) {
            try {
                end.sync();
            } catch (const csp::ChannelPoisonException&) {
                board->poisoned.fetch_add(1);
            }
        });
        auto offerer = csp::multiprocess("offerer", [board](csp::BarrierEnd end, csp::ChannelIn<int> in) {
            try {
                csp::Alternation{csp::BarrierGuard(end), csp::InputGuard(in)}.pri_execute();
            } catch (const csp::ChannelPoisonException&) {
                board->poisoned.fetch_add(1);
            }
        });
        auto poisoner = csp::process("poisoner", [](csp::BarrierEnd end) {
            csp::sleep(50ms);  // (both children parked, usually)
            end.poison();
        });
        auto keep = quiet.writer();
        csp::Parallel(syncer(barrier.end()), offerer(barrier.end(), quiet.reader()), poisoner(barrier.end()));
        CHECK(board->poisoned.load() == 2);
    }
    free_board(board);
}

TEST_CASE("a child that dies with an end poisons the barrier; one that had resigned leaves it alone",
          "[multiprocess][barrier][crash]") {
    Board* board = new_board();
    SECTION("dies enrolled: the members waiting here are poisoned, Parallel throws OSProcessError") {
        csp::Barrier barrier{"crash-enrolled"};
        auto dies = csp::multiprocess("dies", [](csp::BarrierEnd end) {
            end.sync();
            std::raise(SIGKILL);
        });
        auto waiter = csp::process("waiter", [board](csp::BarrierEnd end) {
            try {
                for (;;) end.sync();
            } catch (const csp::ChannelPoisonException&) {
                board->poisoned.fetch_add(1);
            }
        });
        CHECK(ends_with_os_death([&] { csp::Parallel(dies(barrier.end()), waiter(barrier.end()) * 2); }));
        CHECK(board->poisoned.load() == 2);
    }
    SECTION("dies after resigning: the others go on syncing") {
        csp::Barrier barrier{"crash-resigned"};
        auto dies = csp::multiprocess("dies", [](csp::BarrierEnd end) {
            end.sync();
            end.resign();
            std::raise(SIGKILL);
        });
        auto stays = csp::process("stays", [board](csp::BarrierEnd end) {
            end.sync();
            for (int k = 0; k < 100; ++k) {
                end.sync();
                board->arrived[k].fetch_add(1);
            }
        });
        CHECK(ends_with_os_death([&] { csp::Parallel(dies(barrier.end()), stays(barrier.end()) * 2); }));
        CHECK(board->arrived[99].load() == 2);
    }
    CHECK(unreaped_children() == "");
    free_board(board);
}

TEST_CASE("a barrier a child reaches by reference is a clear error there, and poisoned", "[multiprocess][barrier][errors]") {
    csp::Barrier barrier{"smuggled"};
    csp::BarrierEnd mine = barrier.end();
    auto smuggler = csp::multiprocess("smuggler", [&mine] { mine.sync(); });
    try {
        csp::Parallel(smuggler());
        FAIL("the child's use of a barrier it was not handed went through");
    } catch (const csp::ProcessError& e) {
        CHECK_THAT(e.what(), Contains("smuggled") && Contains("not handed"));
    }
    CHECK_THROWS_AS(mine.sync(), csp::ChannelPoisonException);
}

TEST_CASE("children killed at random moments of alting-barrier traffic: nobody hangs", "[multiprocess][barrier][kill]") {
    const int rounds = csp_test::env_int("CSP_TEST_BARRIER_KILLS", 150);
    std::mt19937_64 rng(Catch::rngSeed() + 29);
    Board* board = new_board();
    int killed = 0;
    // Members alternate between plain syncs and choices over the barrier and
    // a channel that a feeder writes; the victim's kill may come at any
    // moment, inside the barrier's lock too.
    // Half the victims also poison the barrier themselves at a random
    // moment, so that a kill may land inside the poisoning too.
    auto body = [](Board* b, int id, bool victim, int poison_at, csp::BarrierEnd end, csp::ChannelIn<int> in) {
        if (victim) b->victim_pid.store(getpid());
        try {
            csp::Alternation alt{csp::BarrierGuard(end), csp::InputGuard(in)};
            for (int k = 0;; ++k) {
                if (victim && k == poison_at) end.poison();
                if ((k + id) % 3 == 0) end.sync();
                else alt.fair_execute();
            }
        } catch (const csp::ChannelPoisonException&) {
        }
        if (victim) for (;;) csp::sleep(1ms);  // (it ends by its kill)
    };
    auto child = csp::multiprocess("member-child", body);
    auto fiber = csp::process("member-fiber", body);
    auto feeder = csp::process("feeder", [](csp::ChannelOut<int> out) {
        try {
            for (int i = 0;; ++i) out(i);
        } catch (const csp::ChannelPoisonException&) {
        }
    });
    auto killer = csp::process("killer", [](Board* b, std::chrono::microseconds delay, csp::BarrierEnd end,
                                            csp::ChannelOut<int> out) {
        end.resign();
        while (b->victim_pid.load() == 0) csp::sleep(50us);
        csp::sleep(delay);
        ::kill(b->victim_pid.load(), SIGKILL);
        out.poison();  // (the members that are not in the barrier's way stop too)
    });
    for (int round = 0; round < rounds; ++round) {
        board->victim_pid.store(0);
        const int victim = static_cast<int>(rng() % 3);
        const auto delay = std::chrono::microseconds(rng() % 5000);
        const int poison_at = rng() % 2 == 0 ? static_cast<int>(rng() % 3000) : -1;
        csp::Barrier barrier{"killed-among"};
        csp::Channel<int> data{"fed"};
        INFO("round " << round << ", victim " << victim << ", kill after " << delay.count() << " us, poison at "
                      << poison_at);
        const bool died = ends_with_os_death([&] {
            csp::Parallel(child(board, 0, victim == 0, poison_at, barrier.end(), data.reader()),
                          child(board, 1, victim == 1, poison_at, barrier.end(), data.reader()),
                          child(board, 2, victim == 2, poison_at, barrier.end(), data.reader()),
                          fiber(board, 3, false, -1, barrier.end(), data.reader()), feeder(data.writer()),
                          killer(board, delay, barrier.end(), data.writer()));
        });
        REQUIRE(died);
        ++killed;
        REQUIRE(unreaped_children() == "");
    }
    CHECK(killed == rounds);
    free_board(board);
}

TEST_CASE("a child that dies holding a barrier's lock at any step: the repair ends every wait here, poisoned",
          "[multiprocess][barrier][crash]") {
    const Dying dying = GENERATE(Dying::holding, Dying::after_poisoned, Dying::reserved_an_offer,
                                 Dying::reserving_an_offer);
    CAPTURE(static_cast<int>(dying));
    Board* board = new_board();
    csp::Barrier barrier{"repaired"};
    csp::Channel<int> quiet{"quiet"};
    // The child waits until both members here are parked (a sync, and a
    // choice offering the barrier), takes the barrier's lock, does part of
    // what a completer or a poisoner does, and dies.
    auto dies = csp::multiprocess("dies-holding", [board, dying](csp::BarrierEnd end) {
        csp::channels::BarrierCore* b = core_of(end);
        while (board->arrived[0].load() < 2) csp::sleep(1ms);
        csp::sleep(20ms);  // (both parked by now, as a rule; the test holds either way)
        b->lock.lock_outside();
        switch (dying) {
            case Dying::holding: break;
            case Dying::after_poisoned: b->poisoned = true; break;  // (poison_locked's first step)
            case Dying::reserved_an_offer:
            case Dying::reserving_an_offer:
                if (csp::channels::Waiter* w = b->offers.head) {
                    if (dying == Dying::reserving_an_offer) b->in_flight = {w->parker, w->token, w->index};
                    csp::runtime::try_complete(w->parker, w->token, csp::runtime::kReserved);
                    if (dying == Dying::reserved_an_offer) b->reserved.push(b->offers.pop_front());
                }
                break;
        }
        std::raise(SIGKILL);
    });
    auto syncer = csp::process("syncer", [board](csp::BarrierEnd end) {
        board->arrived[0].fetch_add(1);
        try {
            end.sync();
        } catch (const csp::ChannelPoisonException&) {
            board->poisoned.fetch_add(1);
        }
    });
    auto offerer = csp::process("offerer", [board](csp::BarrierEnd end, csp::ChannelIn<int> in) {
        board->arrived[0].fetch_add(1);
        try {
            csp::Alternation{csp::BarrierGuard(end), csp::InputGuard(in)}.pri_execute();
        } catch (const csp::ChannelPoisonException&) {
            board->poisoned.fetch_add(1);
        }
    });
    auto keep = quiet.writer();
    CHECK(ends_with_os_death(
        [&] { csp::Parallel(dies(barrier.end()), syncer(barrier.end()), offerer(barrier.end(), quiet.reader())); }));
    CHECK(board->poisoned.load() == 2);
    CHECK(unreaped_children() == "");
    free_board(board);
}
