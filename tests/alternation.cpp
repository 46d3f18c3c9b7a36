// The Alternation suite: what one choice does. Priority and skip, timeouts,
// output guards, actions, pre-conditions, runtime-sized guard sets, the select
// forms, deterministic fairness, poison and retire arriving while a choice is
// parked, choices from main and from plain threads, and deadlock inside a
// choice. The scenarios of many alting processes at once are in
// alternation_stress.cpp.
//
// Tags: [conformance] scenarios run their processes through run_network and
// so hold in every placement (tests/meson.build runs them with plain threads
// too); the others run on main or as fibers. Deterministic scenarios use
// buffered channels filled from main, so which guards are ready is known.
#include "alternation_helpers.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <numeric>
#include <thread>

using namespace std::chrono_literals;
using csp_test::Body;
using csp_test::Choice;
using csp_test::Clock;
using csp_test::Ending;
using csp_test::held_value;
using csp_test::Tracked;
using csp_test::TrackedCounts;
using Catch::Contains;

namespace {

// ms(d): a duration in milliseconds, for CAPTURE.
double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A generous upper bound for "fires soon after its deadline": the machine is
// a loaded 2-core VM and sanitizer builds are 5-20x slower.
constexpr auto late_bound = 1500ms;

}  // namespace

// ---------------------------------------------------------------------------
// Priority and skip

TEST_CASE("PriSelect chooses the first ready guard in argument order", "[alternation][priority]") {
    csp::Channel<int> a{"pri-a", csp::buffer(4)}, b{"pri-b", csp::buffer(4)}, c{"pri-c", csp::buffer(4)};
    auto a_out = a.writer(), b_out = b.writer(), c_out = c.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader();
    b_out(10);
    b_out(11);
    c_out(20);

    std::vector<std::pair<std::size_t, int>> got;
    for (int i = 0; i < 3; ++i) {
        auto r = csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in));
        got.emplace_back(r.index(), held_value(r));
    }
    // b before c while b has values; a is never ready.
    CHECK(got == std::vector<std::pair<std::size_t, int>>{{1, 10}, {1, 11}, {2, 20}});

    // Nothing is ready: the skip guard, last, is chosen and nothing is read.
    auto none = csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in), csp::SkipGuard());
    CHECK(none.index() == 3);

    // c then a become ready: a comes first although c was ready before it.
    c_out(21);
    a_out(1);
    auto first = csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in), csp::SkipGuard());
    CHECK(first.index() == 0);
    CHECK(held_value(first) == 1);
    auto second = csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in), csp::SkipGuard());
    CHECK(second.index() == 2);
    CHECK(held_value(second) == 21);
}

TEST_CASE("a SkipGuard first in priority wins over ready guards, which keep their values", "[alternation][priority][skip]") {
    csp::Channel<int> a{"skip-a", csp::buffer(2)}, b{"skip-b", csp::buffer(2)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    a_out(5);

    // Ready input and output guards behind a skip: only the skip fires.
    for (int i = 0; i < 10; ++i) {
        auto r = csp::PriSelect(csp::SkipGuard(), csp::InputGuard(a_in), csp::OutputGuard(b_out, 99));
        CHECK(r.index() == 0);
    }
    // a still holds its value, and b got nothing.
    auto from_a = csp::PriSelect(csp::InputGuard(a_in), csp::SkipGuard());
    CHECK(from_a.index() == 0);
    CHECK(held_value(from_a) == 5);
    auto from_b = csp::PriSelect(csp::InputGuard(b_in), csp::SkipGuard());
    CHECK(from_b.index() == 1);
}

TEST_CASE("pri_execute chooses in order and runs only the chosen guard's action", "[alternation][priority][actions]") {
    csp::Channel<int> a{"pe-a", csp::buffer(4)}, b{"pe-b", csp::buffer(4)}, c{"pe-c", csp::buffer(2)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader();
    auto c_out = c.writer();
    a_out(1);
    a_out(2);
    b_out(3);

    std::array<int, 4> calls{};
    std::vector<int> from_a;
    csp::Alternation alt{
        csp::InputGuard(a_in, [&](int v) { ++calls[0]; from_a.push_back(v); }),
        csp::InputGuard(b_in, [&] { ++calls[1]; }),  // a nullary input action
        csp::OutputGuard(c_out, 7, [&] { ++calls[2]; }),
        csp::SkipGuard([&] { ++calls[3]; }),
    };
    std::vector<std::size_t> chosen;
    for (int i = 0; i < 7; ++i) chosen.push_back(alt.pri_execute());

    // a twice, b once, then c while it has room (2), then only the skip.
    CHECK(chosen == std::vector<std::size_t>{0, 0, 1, 2, 2, 3, 3});
    CHECK(calls == std::array<int, 4>{2, 1, 2, 2});
    CHECK(from_a == std::vector<int>{1, 2});
    // The output guard sent its value each time it fired.
    CHECK(c_in() == 7);
    CHECK(c_in() == 7);
    CHECK(csp::PriSelect(csp::InputGuard(c_in), csp::SkipGuard()).index() == 1);
}

TEST_CASE("execute returns the position of the one ready guard and runs its action", "[alternation][actions]") {
    csp::Channel<int> a{"ex-a", csp::buffer(4)}, b{"ex-b", csp::buffer(4)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    std::array<int, 3> calls{};
    int last = -1;
    csp::Alternation alt{
        csp::InputGuard(a_in, [&](int v) { ++calls[0]; last = v; }),
        csp::InputGuard(b_in, [&](int v) { ++calls[1]; last = v; }),
        csp::TimeoutGuard(20ms, [&] { ++calls[2]; }),
    };
    b_out(40);
    CHECK(alt.execute() == 1);
    CHECK(last == 40);
    a_out(41);
    CHECK(alt.execute() == 0);
    CHECK(last == 41);
    const auto start = Clock::now();
    CHECK(alt.execute() == 2);  // nothing ready: the timeout
    CHECK(Clock::now() - start >= 20ms);
    CHECK(calls == std::array<int, 3>{1, 1, 1});
}

// With several guards ready, execute may choose any; whichever it chooses,
// exactly that guard's action runs, once, and its communication happened.
TEST_CASE("execute with several ready guards runs exactly the chosen guard's action", "[alternation][actions]") {
    csp::Channel<int> a{"many-a", csp::buffer(200)}, b{"many-b", csp::buffer(200)}, c{"many-c", csp::buffer(200)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader();
    auto c_out = c.writer();
    for (int i = 0; i < 100; ++i) {
        a_out(i);
        b_out(1000 + i);
    }
    std::array<int, 4> calls{};
    std::array<int, 4> returned{};
    std::vector<int> read;
    csp::Alternation alt{
        csp::InputGuard(a_in, [&](int v) { ++calls[0]; read.push_back(v); }),
        csp::InputGuard(b_in, [&](int v) { ++calls[1]; read.push_back(v); }),
        csp::OutputGuard(c_out, 5, [&] { ++calls[2]; }),
        csp::SkipGuard([&] { ++calls[3]; }),
    };
    for (int i = 0; i < 100; ++i) ++returned.at(alt.execute());
    CHECK(calls == returned);
    CHECK(std::accumulate(calls.begin(), calls.end(), 0) == 100);
    CHECK(static_cast<int>(read.size()) == calls[0] + calls[1]);
    // The output guard's fires are in c, nothing more.
    int in_c = 0;
    while (csp::PriSelect(csp::InputGuard(c_in), csp::SkipGuard()).index() == 0) ++in_c;
    CHECK(in_c == calls[2]);
}

TEST_CASE("the select forms of an Alternation communicate and run no action", "[alternation][select]") {
    csp::Channel<int> a{"sel-a", csp::buffer(8)}, b{"sel-b", csp::buffer(8)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    int actions = 0;
    csp::Alternation alt{
        csp::InputGuard(a_in, [&](int) { ++actions; }),
        csp::OutputGuard(b_out, 8, [&] { ++actions; }),
        csp::SkipGuard([&] { ++actions; }),
    };
    a_out(1);
    a_out(2);
    a_out(3);

    auto r1 = alt.select();
    auto r2 = alt.pri_select();
    auto r3 = alt.fair_select();  // first fair choice starts at guard 0
    CHECK(r1.index() == 0);
    CHECK(std::get<0>(r1) == 1);
    CHECK(r2.index() == 0);
    CHECK(std::get<0>(r2) == 2);
    CHECK(r3.index() == 0);
    CHECK(std::get<0>(r3) == 3);
    auto r4 = alt.fair_select();  // after guard 0: the output guard
    CHECK(r4.index() == 1);
    auto r5 = alt.pri_select();  // a is empty now: b has room
    CHECK(r5.index() == 1);
    CHECK(actions == 0);
    CHECK(b_in() == 8);
    CHECK(b_in() == 8);
}

// ---------------------------------------------------------------------------
// Output guards

TEST_CASE("an output guard delivers its value to a reader", "[alternation][output][conformance]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    const TrackedCounts before;
    {
        auto channel = csp_test::make_channel<Tracked>(buffer, "output-guard");
        csp::Channel<int> never{"output-guard-never"};
        std::vector<int> got;
        std::atomic<int> wrong_guard{0};
        std::vector<Body> bodies;
        bodies.push_back([&, out = channel.writer(), dead = never.writer()]() mutable {
            for (int i = 0; i < 50; ++i) {
                // The other output guard's channel has no reader ready ever.
                auto r = csp::PriSelect(csp::OutputGuard(dead, -1), csp::OutputGuard(out, Tracked(i)));
                if (r.index() != 1) ++wrong_guard;
            }
        });
        bodies.push_back([&, in = channel.reader(), keep = never.reader()]() mutable {
            for (;;) got.push_back(in().value);
        });
        csp_test::run_network(std::move(bodies));

        std::vector<int> expected(50);
        std::iota(expected.begin(), expected.end(), 0);
        CHECK(got == expected);
        CHECK(wrong_guard == 0);
    }
    CHECK(Tracked::live == before.live);
    // A guard given as a temporary gives its value away: nothing is copied.
    CHECK(Tracked::copies == before.copies);
}

TEST_CASE("an output guard is not ready on a full buffer and sends nothing when not chosen", "[alternation][output]") {
    const TrackedCounts before;
    {
        csp::Channel<Tracked> full{"full", csp::buffer(2)};
        auto out = full.writer();
        auto in = full.reader();
        out(Tracked(1));
        out(Tracked(2));
        auto r = csp::PriSelect(csp::OutputGuard(out, Tracked(3)), csp::SkipGuard());
        CHECK(r.index() == 1);
        CHECK(in().value == 1);
        auto r2 = csp::PriSelect(csp::OutputGuard(out, Tracked(4)), csp::SkipGuard());
        CHECK(r2.index() == 0);
        CHECK(in().value == 2);
        CHECK(in().value == 4);
        CHECK(csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()).index() == 1);
    }
    CHECK(Tracked::live == before.live);
}

TEST_CASE("an Alternation's output guard sends its value each time it fires", "[alternation][output]") {
    const TrackedCounts before;
    {
        csp::Channel<Tracked> channel{"repeat-output", csp::buffer(8)};
        auto out = channel.writer();
        auto in = channel.reader();
        int sent = 0;
        csp::Alternation alt{csp::OutputGuard(out, Tracked(42), [&] { ++sent; })};
        for (int i = 0; i < 5; ++i) CHECK(alt.execute() == 0);
        CHECK(sent == 5);
        for (int i = 0; i < 5; ++i) CHECK(in().value == 42);
        CHECK(csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()).index() == 1);
    }
    CHECK(Tracked::live == before.live);
}

TEST_CASE("a move-only value in an Alternation's output guard is sent once", "[alternation][output]") {
    csp::Channel<std::unique_ptr<int>> channel{"move-only-output", csp::buffer(4)};
    auto out = channel.writer();
    auto in = channel.reader();
    csp::Alternation alt{csp::OutputGuard(out, std::make_unique<int>(9))};
    CHECK(alt.execute() == 0);
    CHECK_THROWS_WITH(alt.execute(), Catch::Contains("its move-only value was already sent"));
    CHECK_THROWS_AS(alt.execute(), csp::UsageError);
    std::unique_ptr<int> got = in();
    REQUIRE(got != nullptr);
    CHECK(*got == 9);
    CHECK(csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()).index() == 1);
}

// ---------------------------------------------------------------------------
// Timeouts

TEST_CASE("a TimeoutGuard never fires early and fires soon after its deadline", "[alternation][timeout]") {
    csp::Channel<int> silent{"silent-timeout"};
    auto keep_open = silent.writer();
    auto in = silent.reader();
    const auto duration = GENERATE(as<std::chrono::milliseconds>{}, 0, 1, 5, 20, 100, 250);
    CAPTURE(duration.count());
    int actions = 0;
    const auto start = Clock::now();
    auto r = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(duration));
    const auto elapsed = Clock::now() - start;
    csp::Alternation alt{csp::InputGuard(in), csp::TimeoutGuard(duration, [&] { ++actions; })};
    const auto start2 = Clock::now();
    const std::size_t chosen = alt.execute();
    const auto elapsed2 = Clock::now() - start2;
    CAPTURE(ms(elapsed), ms(elapsed2));
    CHECK(r.index() == 1);
    CHECK(elapsed >= duration);
    CHECK(elapsed < duration + late_bound);
    CHECK(chosen == 1);
    CHECK(actions == 1);
    CHECK(elapsed2 >= duration);
    CHECK(elapsed2 < duration + late_bound);
}

TEST_CASE("a TimeoutGuard takes any std::chrono duration", "[alternation][timeout]") {
    const auto check = [](auto duration, std::chrono::nanoseconds expected) {
        const auto start = Clock::now();
        auto r = csp::PriSelect(csp::SkipGuard().when(false), csp::TimeoutGuard(duration));
        const auto elapsed = Clock::now() - start;
        CAPTURE(ms(elapsed), expected.count());
        CHECK(r.index() == 1);
        CHECK(elapsed >= expected);
        CHECK(elapsed < expected + late_bound);
    };
    check(std::chrono::microseconds(3500), 3500us);
    check(std::chrono::duration<double, std::milli>(7.5), 7500us);
    check(std::chrono::duration<long, std::centi>(2), 20ms);
    check(std::chrono::seconds(0), 0ns);
}

// With several timeouts the earliest fires; one with a false pre-condition
// does not fire at all.
TEST_CASE("the earliest enabled TimeoutGuard fires", "[alternation][timeout]") {
    int fired_at = -1;
    csp::Alternation alt{
        csp::TimeoutGuard(300ms, [&] { fired_at = 300; }),
        csp::TimeoutGuard(30ms, [&] { fired_at = 30; }).when(false),
        csp::TimeoutGuard(80ms, [&] { fired_at = 80; }),
    };
    const auto start = Clock::now();
    const std::size_t chosen = alt.pri_execute();
    const auto elapsed = Clock::now() - start;
    CAPTURE(ms(elapsed));
    CHECK(chosen == 2);
    CHECK(fired_at == 80);
    CHECK(elapsed >= 80ms);
    CHECK(elapsed < 300ms);
}

TEST_CASE("timeouts of many parked choices are each on time", "[alternation][timeout][conformance]") {
    CAPTURE(csp_test::placement_name());
    constexpr int choosers = 40;
    csp::Channel<int> silent{"silent-many"};
    auto keep_open = silent.writer();
    std::atomic<int> timed_out{0}, early{0}, late{0}, wrong{0};
    std::vector<Body> bodies;
    for (int i = 0; i < choosers; ++i) {
        bodies.push_back([&, i, in = silent.reader()]() mutable {
            const auto duration = std::chrono::milliseconds(10 + 5 * (i % 10));
            const auto start = Clock::now();
            auto r = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(duration));
            const auto elapsed = Clock::now() - start;
            if (r.index() == 1)
                ++timed_out;
            else
                ++wrong;
            if (elapsed < duration) ++early;
            if (elapsed > duration + late_bound) ++late;
        });
    }
    csp_test::run_network(std::move(bodies));
    CHECK(timed_out == choosers);
    CHECK(wrong == 0);
    CHECK(early == 0);
    CHECK(late == 0);
}

TEST_CASE("a guard that becomes ready first wins over a pending timeout", "[alternation][timeout][conformance]") {
    const int buffer = GENERATE(0, 1);
    CAPTURE(csp_test::placement_name(), buffer);
    auto channel = csp_test::make_channel<int>(buffer, "beats-timeout");
    std::size_t chosen = 99;
    int value = 0;
    Clock::duration elapsed{};
    // (Whether the choice waited for the writer is a fact about order, not
    // time: it returned after the writer began to write. Its own start is no
    // reference: on plain threads the writer may start well before it.)
    std::atomic<Clock::rep> writing_at{0};
    Clock::time_point returned_at{};
    std::vector<Body> bodies;
    bodies.push_back([&, in = channel.reader()]() mutable {
        const auto start = Clock::now();
        auto r = csp::PriSelect(csp::TimeoutGuard(10s), csp::InputGuard(in));
        returned_at = Clock::now();
        elapsed = returned_at - start;
        chosen = r.index();
        value = held_value(r);
    });
    bodies.push_back([&, out = channel.writer()]() mutable {
        csp::sleep(40ms);
        writing_at = Clock::now().time_since_epoch().count();
        out(17);
    });
    csp_test::run_network(std::move(bodies));
    CAPTURE(ms(elapsed));
    CHECK(chosen == 1);
    CHECK(value == 17);
    CHECK(returned_at.time_since_epoch().count() >= writing_at.load());
    CHECK(elapsed < 5s);
}

// The timer of a choice that ended before its deadline may still be pending
// in the worker's timer heap (it is left there until it is due): it must not
// end a later choice of the same process, with or without a timeout.
TEST_CASE("the timer of an earlier choice does not end a later one", "[alternation][timeout][conformance]") {
    CAPTURE(csp_test::placement_name());
    csp::Channel<int> fed{"fed-early"};
    csp::Channel<int> late{"late"};
    Clock::duration second_wait{};
    std::size_t plain_chosen = 99, timed_chosen = 99;
    int plain_value = 0;
    std::atomic<int> early_choices{0};
    std::vector<Body> bodies;
    bodies.push_back([&, in = fed.reader(), late_in = late.reader()]() mutable {
        // 32 choices that park with a 300 ms timeout and are served after
        // about 2 ms: their timers are still pending when they end. (The
        // margin is wide because a loaded CI machine under TSan once took
        // more than 40 ms to serve one.)
        for (int i = 0; i < 32; ++i) {
            auto r = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(300ms));
            if (r.index() != 0) ++early_choices;
        }
        // Now a choice with a later deadline, waiting past the old ones.
        const auto start = Clock::now();
        auto timed = csp::PriSelect(csp::InputGuard(late_in), csp::TimeoutGuard(600ms));
        second_wait = Clock::now() - start;
        timed_chosen = timed.index();
        // And a choice with no timeout at all, served at 1 s.
        auto plain = csp::PriSelect(csp::InputGuard(late_in));
        plain_chosen = plain.index();
        plain_value = held_value(plain);
    });
    bodies.push_back([&, out = fed.writer()]() mutable {
        for (int i = 0; i < 32; ++i) {
            csp::sleep(2ms);
            out(i);
        }
    });
    bodies.push_back([&, out = late.writer()]() mutable {
        csp::sleep(1000ms);
        out(3);
    });
    csp_test::run_network(std::move(bodies));
    CAPTURE(ms(second_wait));
    CHECK(early_choices == 0);
    CHECK(timed_chosen == 1);
    CHECK(second_wait >= 600ms);
    CHECK(plain_chosen == 0);
    CHECK(plain_value == 3);
}

// When a parked choice is won through one guard, its other guards stop being
// offered: a partner that comes later to one of those channels finds nobody,
// even while the chooser is parked in its next choice (on another channel).
TEST_CASE("the guards that lost a choice are offered no longer", "[alternation][conformance]") {
    const bool inputs = GENERATE(true, false);
    CAPTURE(csp_test::placement_name(), inputs);
    csp::Channel<int> a{"lost-a"}, b{"lost-b"}, c{"lost-c"};
    std::size_t first_chosen = 99;
    int first_value = -1, second_value = -1;
    bool lost_guard_taken = true;
    std::vector<Body> bodies;
    if (inputs) {
        bodies.push_back([&, a_in = a.reader(), b_in = b.reader(), c_in = c.reader()]() mutable {
            auto first = csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in));
            first_chosen = first.index();
            first_value = held_value(first);
            second_value = held_value(csp::PriSelect(csp::InputGuard(c_in)));
        });
        bodies.push_back([&, a_out = a.writer(), b_out = b.writer(), c_out = c.writer()]() mutable {
            csp::sleep(30ms);
            b_out(1);
            csp::sleep(30ms);  // the chooser is parked on c now
            lost_guard_taken = csp::PriSelect(csp::OutputGuard(a_out, 7), csp::SkipGuard()).index() == 0;
            c_out(3);
        });
    } else {
        bodies.push_back([&, a_out = a.writer(), b_out = b.writer(), c_out = c.writer()]() mutable {
            first_chosen = csp::PriSelect(csp::OutputGuard(a_out, 10), csp::OutputGuard(b_out, 1)).index();
            csp::PriSelect(csp::OutputGuard(c_out, 3));
        });
        bodies.push_back([&, a_in = a.reader(), b_in = b.reader(), c_in = c.reader()]() mutable {
            csp::sleep(30ms);
            first_value = b_in();
            csp::sleep(30ms);
            lost_guard_taken = csp::PriSelect(csp::InputGuard(a_in), csp::SkipGuard()).index() == 0;
            second_value = c_in();
        });
    }
    csp_test::run_network(std::move(bodies));
    CHECK(first_chosen == 1);
    CHECK(first_value == 1);
    CHECK_FALSE(lost_guard_taken);
    CHECK(second_value == 3);
}

// ---------------------------------------------------------------------------
// Pre-conditions

TEST_CASE("a false pre-condition disables a guard of each kind", "[alternation][when]") {
    csp::Channel<int> a{"when-a", csp::buffer(4)}, b{"when-b", csp::buffer(4)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    a_out(1);

    // A ready input guard that is disabled is passed over, and keeps its value.
    auto r1 = csp::PriSelect(csp::InputGuard(a_in).when(false), csp::SkipGuard());
    CHECK(r1.index() == 1);
    // An output guard with room that is disabled sends nothing.
    auto r2 = csp::PriSelect(csp::OutputGuard(b_out, 5).when(false), csp::SkipGuard());
    CHECK(r2.index() == 1);
    CHECK(csp::PriSelect(csp::InputGuard(b_in), csp::SkipGuard()).index() == 1);
    // A disabled skip guard leaves the choice to wait for the next guard.
    auto r3 = csp::PriSelect(csp::SkipGuard().when(false), csp::InputGuard(a_in));
    CHECK(r3.index() == 1);
    CHECK(held_value(r3) == 1);
    // A disabled timeout guard does not fire: the enabled later one does.
    const auto start = Clock::now();
    auto r4 = csp::PriSelect(csp::TimeoutGuard(1ms).when(false), csp::InputGuard(a_in), csp::TimeoutGuard(60ms));
    CHECK(r4.index() == 2);
    CHECK(Clock::now() - start >= 60ms);
    // when(true) is the same as no pre-condition.
    a_out(2);
    auto r5 = csp::PriSelect(csp::InputGuard(a_in).when(true), csp::SkipGuard().when(true));
    CHECK(r5.index() == 0);
    CHECK(held_value(r5) == 2);
}

TEST_CASE("an Alternation never runs the action of a disabled guard", "[alternation][when][actions]") {
    csp::Channel<int> a{"when-alt-a", csp::buffer(64)}, b{"when-alt-b", csp::buffer(64)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    for (int i = 0; i < 30; ++i) {
        a_out(i);
        b_out(i);
    }
    std::array<int, 3> calls{};
    csp::Alternation alt{
        csp::InputGuard(a_in, [&] { ++calls[0]; }).when(false),
        csp::InputGuard(b_in, [&] { ++calls[1]; }),
        csp::SkipGuard([&] { ++calls[2]; }).when(false),
    };
    for (int i = 0; i < 30; ++i) alt.fair_execute();
    CHECK(calls == std::array<int, 3>{0, 30, 0});
}

// stop_report(f): the report of the DeadlockError that ends f run alone as
// a process, or "" when f ends without one.
template <class F>
std::string stop_report(F&& f) {
    try {
        csp::Parallel(csp::process("the-chooser", [&] { f(); })());
    } catch (const csp::DeadlockError& e) {
        return e.what();
    }
    return "";
}

// API.md: guards whose pre-condition is false take no part; a choice whose
// every guard is disabled, with no skip or timeout, waits for ever (occam's
// STOP), and the deadlock detector reports it. A ready value on a disabled
// guard's channel, its poison or its retire changes nothing.
TEST_CASE("a choice whose every guard is disabled waits for ever (STOP)", "[alternation][when][deadlock]") {
    csp::Channel<int> a{"all-off-a", csp::buffer(4)};
    auto a_out = a.writer();
    auto a_in = a.reader();
    a_out(1);
    using Catch::Matchers::Contains;
    CHECK_THAT(stop_report([&] { csp::PriSelect(csp::InputGuard(a_in).when(false)); }),
               Contains("the-chooser") && Contains("every guard is disabled (STOP)"));
    CHECK_THAT(stop_report([&] {
                   csp::PriSelect(csp::InputGuard(a_in).when(false), csp::OutputGuard(a_out, 2).when(false));
               }),
               Contains("STOP"));
    CHECK_THAT(stop_report([&] {
                   csp::AltSelect(csp::InputGuard(a_in).when(false), csp::SkipGuard().when(false),
                                  csp::TimeoutGuard(1ms).when(false));
               }),
               Contains("STOP"));
    csp::Alternation alt{csp::InputGuard(a_in).when(false)};
    CHECK_THAT(stop_report([&] { alt.execute(); }), Contains("STOP"));
    CHECK_THAT(stop_report([&] { alt.fair_execute(); }), Contains("STOP"));
    std::vector<csp::InputGuard<int>> off;
    off.push_back(csp::InputGuard(a_in).when(false));
    CHECK_THAT(stop_report([&] { csp::FairSelect(off); }), Contains("STOP"));
    // The value is still there.
    CHECK(a_in() == 1);

    // Nor does a partner's retire or poison of a disabled guard's channel
    // end the wait: the chooser is still blocked when the other ends.
    csp::Channel<int> b{"all-off-b"};
    std::atomic<bool> other_done{false};
    const std::string report = [&] {
        try {
            csp::Parallel(csp::process("the-chooser", [&](csp::ChannelIn<int> in) {
                              csp::PriSelect(csp::InputGuard(in).when(false));
                          })(b.reader()),
                          csp::process("the-leaver", [&](csp::ChannelOut<int> out) {
                              csp::sleep(20ms);
                              out.poison();
                              other_done = true;
                          })(b.writer()));
        } catch (const csp::DeadlockError& e) {
            return std::string(e.what());
        }
        return std::string();
    }();
    CHECK(other_done);
    CHECK_THAT(report, Contains("the-chooser") && Contains("STOP"));
}

// API.md: a choice with at least one enabled channel guard, all of them
// retired, throws ChannelRetireException even when it has skip or timeout
// guards; disabled guards take no part in that either.
TEST_CASE("a choice whose enabled channel guards are all retired throws, skip and timeout or not",
          "[alternation][retire][when]") {
    csp::Channel<int> a{"gone-a", csp::buffer(2)}, b{"live-b"};
    auto a_in = a.reader();
    auto b_in = b.reader();
    auto b_out = b.writer();
    {
        auto a_out = a.writer();
        a_out(7);
    }  // a's only writer has left: a is retired, with 7 still buffered
    // A buffered value is still read: the guard is not retired yet.
    CHECK(csp::PriSelect(csp::SkipGuard(), csp::InputGuard(a_in)).index() == 0);
    auto r = csp::PriSelect(csp::InputGuard(a_in), csp::SkipGuard());
    REQUIRE(r.index() == 0);
    CHECK(std::get<0>(r) == 7);
    // Now a is retired and empty.
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(a_in), csp::SkipGuard()), csp::ChannelRetireException);
    CHECK_THROWS_AS(csp::PriSelect(csp::SkipGuard(), csp::InputGuard(a_in)), csp::ChannelRetireException);
    CHECK_THROWS_AS(csp::FairSelect(csp::SkipGuard(), csp::InputGuard(a_in), csp::TimeoutGuard(0ms)),
                    csp::ChannelRetireException);
    const auto start = Clock::now();
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(a_in), csp::TimeoutGuard(10s)), csp::ChannelRetireException);
    CHECK(Clock::now() - start < 5s);  // at once, not at the timeout
    // One live channel guard is enough for the skip or timeout to fire.
    CHECK(csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::SkipGuard()).index() == 2);
    CHECK(csp::PriSelect(csp::SkipGuard(), csp::InputGuard(a_in), csp::InputGuard(b_in)).index() == 0);
    CHECK(csp::PriSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::TimeoutGuard(1ms)).index() == 2);
    // A retired guard that is disabled takes no part: the skip fires.
    CHECK(csp::PriSelect(csp::InputGuard(a_in).when(false), csp::SkipGuard()).index() == 1);
    CHECK(csp::PriSelect(csp::InputGuard(a_in).when(false), csp::TimeoutGuard(1ms)).index() == 1);
    // The same for the vector forms and a reusable Alternation.
    std::vector<csp::InputGuard<int>> gone;
    gone.emplace_back(a_in);
    CHECK_THROWS_AS(csp::PriSelect(gone), csp::ChannelRetireException);
    csp::Alternation alt{csp::InputGuard(a_in), csp::SkipGuard(), csp::TimeoutGuard(1ms)};
    CHECK_THROWS_AS(alt.pri_execute(), csp::ChannelRetireException);
    CHECK_THROWS_AS(alt.fair_execute(), csp::ChannelRetireException);
    CHECK_THROWS_AS(alt.fair_select(), csp::ChannelRetireException);
}

// The story the rule is for: a server alts over its request channel and a
// timeout (to do housekeeping now and then); its clients each send their
// requests and leave. The server must serve every request exactly once and
// then end by retire, on every placement, however the retire and its
// timeouts interleave.
TEST_CASE("a server alting over requests and a timeout ends when its clients have gone",
          "[alternation][retire][conformance]") {
    const bool fair = GENERATE(false, true);
    const int buffer = GENERATE(0, 4);
    CAPTURE(csp_test::placement_name(), fair, buffer);
    constexpr int clients = 4, per_client = 200;
    auto requests = csp_test::make_channel<int>(buffer, "requests");
    std::vector<int> served;
    int ticks = 0;
    Ending server_ending = Ending::running;
    std::vector<Body> bodies;
    bodies.push_back([&, in = requests.reader()]() mutable {
        server_ending = csp_test::ending_of([&] {
            csp::Alternation alt{csp::InputGuard(in, [&](int v) { served.push_back(v); }),
                                 csp::TimeoutGuard(1ms, [&] { ++ticks; })};
            for (;;) fair ? alt.fair_execute() : alt.execute();
        });
    });
    for (int c = 0; c < clients; ++c) {
        bodies.push_back([c, out = requests.writer()]() mutable {
            csp::sleep(50ms);  // the server times out while nobody has sent yet
            for (int i = 0; i < per_client; ++i) {
                out(c * per_client + i);
                if (i % 50 == 0) csp::sleep(2ms);  // let the server's timeout fire now and then
            }
            out.retire();
        });
    }
    csp_test::run_network(std::move(bodies));
    CHECK(server_ending == Ending::retired);
    CHECK(csp_test::each_once(served, clients * per_client));
    CHECK(ticks > 0);
}

// ---------------------------------------------------------------------------
// Runtime-sized guard sets

TEST_CASE("select over a std::vector of input guards returns the position and the value", "[alternation][vector]") {
    constexpr int n = 6;
    std::vector<csp::Channel<int>> channels;
    std::vector<csp::ChannelOut<int>> outs;
    std::vector<csp::ChannelIn<int>> ins;
    for (int i = 0; i < n; ++i) {
        channels.emplace_back("vector-" + std::to_string(i), csp::buffer(4));
        outs.push_back(channels.back().writer());
        ins.push_back(channels.back().reader());
    }
    std::vector<csp::InputGuard<int>> guards;
    for (auto& in : ins) guards.emplace_back(in);

    outs[4](40);
    outs[2](20);
    auto r1 = csp::PriSelect(guards);  // lvalue vector: reusable
    CHECK(r1.first == 2);
    CHECK(r1.second == std::optional<int>(20));
    auto r2 = csp::AltSelect(guards);
    CHECK(r2.first == 4);
    CHECK(r2.second == std::optional<int>(40));
    outs[5](50);
    auto r3 = csp::FairSelect(guards);
    CHECK(r3.first == 5);
    CHECK(r3.second == std::optional<int>(50));

    // An rvalue vector, with owned ends and pre-conditions.
    outs[0](1);
    outs[1](11);
    std::vector<csp::InputGuard<int>> once;
    for (int i = 0; i < n; ++i) once.push_back(csp::InputGuard(channels[i].reader()).when(i != 0));
    auto r4 = csp::PriSelect(std::move(once));
    CHECK(r4.first == 1);
    CHECK(r4.second == std::optional<int>(11));
    CHECK(ins[0]() == 1);
}

TEST_CASE("select over a std::vector of output or skip guards returns the position and no value", "[alternation][vector]") {
    csp::Channel<int> a{"vec-out-a", csp::buffer(1)}, b{"vec-out-b", csp::buffer(1)};
    auto a_out = a.writer(), b_out = b.writer();
    auto a_in = a.reader(), b_in = b.reader();
    a_out(0);  // a is full
    std::vector<csp::OutputGuard<int>> guards;
    guards.emplace_back(a_out, 1);
    guards.emplace_back(b_out, 2);
    auto r = csp::PriSelect(guards);
    CHECK(r.first == 1);
    CHECK_FALSE(r.second.has_value());
    CHECK(b_in() == 2);
    CHECK(a_in() == 0);
    // The guards of an lvalue vector keep their values: they send again.
    auto again = csp::PriSelect(guards);
    CHECK(again.first == 0);
    CHECK(a_in() == 1);

    std::vector<csp::SkipGuard> skips(3);
    skips[0].when(false);
    auto s = csp::PriSelect(skips);
    CHECK(s.first == 1);
    CHECK_FALSE(s.second.has_value());

    std::vector<csp::TimeoutGuard> timeouts;
    timeouts.emplace_back(200ms);
    timeouts.emplace_back(20ms);
    const auto start = Clock::now();
    auto t = csp::AltSelect(std::move(timeouts));
    CHECK(t.first == 1);
    CHECK(Clock::now() - start >= 20ms);
}

TEST_CASE("an Alternation over a std::vector runs each guard's own action", "[alternation][vector][actions]") {
    constexpr int n = 5;
    std::vector<csp::Channel<int>> channels;
    std::vector<csp::ChannelOut<int>> outs;
    for (int i = 0; i < n; ++i) {
        channels.emplace_back("vec-alt-" + std::to_string(i), csp::buffer(16));
        outs.push_back(channels.back().writer());
    }
    std::vector<int> calls(n, 0);
    std::vector<int> sum(n, 0);
    std::vector<csp::InputGuard<int>> guards;
    for (int i = 0; i < n; ++i) {
        // Different lambdas (closures of different types) in one vector.
        if (i % 2 == 0)
            guards.push_back(csp::InputGuard(channels[i].reader(), [&calls, &sum, i](int v) {
                ++calls[i];
                sum[i] += v;
            }));
        else
            guards.push_back(csp::InputGuard(channels[i].reader(), [&calls, i] { ++calls[i]; }));
    }
    csp::Alternation alt{std::move(guards)};
    for (int i = 0; i < n; ++i)
        for (int k = 0; k <= i; ++k) outs[i](k + 1);  // channel i holds i+1 values

    std::vector<std::size_t> chosen;
    for (int k = 0; k < n * (n + 1) / 2; ++k) chosen.push_back(alt.pri_execute());
    CHECK(std::is_sorted(chosen.begin(), chosen.end()));  // priority: drain 0, then 1, ...
    CHECK(calls == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(sum[0] == 1);
    CHECK(sum[2] == 6);
    CHECK(sum[4] == 15);
    CHECK(sum[1] == 0);  // nullary actions took no value

    outs[3](7);
    auto [index, value] = alt.select();
    CHECK(index == 3);
    CHECK(value == std::optional<int>(7));
    CHECK(calls[3] == 4);  // select runs no action
}

TEST_CASE("an empty vector of guards throws ChannelRetireException", "[alternation][vector][retire]") {
    using csp_test::ending_in_process;
    std::vector<csp::InputGuard<int>> none;
    CHECK(ending_in_process([&] { csp::PriSelect(none); }) == Ending::retired);
    CHECK(ending_in_process([&] { csp::FairSelect(std::vector<csp::SkipGuard>{}); }) == Ending::retired);
}

// ---------------------------------------------------------------------------
// Fairness (deterministic: every guard's readiness is known)

TEST_CASE("fair_execute round-robins over always-ready guards", "[alternation][fair]") {
    constexpr int per_guard = 1000, choices = 3 * per_guard;
    csp::Channel<int> a{"fair-a", csp::buffer(per_guard)}, b{"fair-b", csp::buffer(per_guard)},
        c{"fair-c", csp::buffer(per_guard)};
    auto a_out = a.writer(), b_out = b.writer(), c_out = c.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader();
    for (int i = 0; i < per_guard; ++i) {
        a_out(i);
        b_out(i);
        c_out(i);
    }
    std::array<std::vector<int>, 3> got;
    csp::Alternation alt{
        csp::InputGuard(a_in, [&](int v) { got[0].push_back(v); }),
        csp::InputGuard(b_in, [&](int v) { got[1].push_back(v); }),
        csp::InputGuard(c_in, [&](int v) { got[2].push_back(v); }),
    };
    int out_of_turn = 0;
    for (int k = 0; k < choices; ++k)
        if (alt.fair_execute() != static_cast<std::size_t>(k % 3)) ++out_of_turn;
    CHECK(out_of_turn == 0);
    std::vector<int> expected(per_guard);
    std::iota(expected.begin(), expected.end(), 0);
    for (const auto& one : got) CHECK(one == expected);
}

TEST_CASE("fair_execute round-robins over input, output and skip guards alike", "[alternation][fair]") {
    constexpr int per_guard = 1000;
    csp::Channel<int> in_ch{"fair-mixed-in", csp::buffer(per_guard)}, out_ch{"fair-mixed-out", csp::buffer(per_guard)};
    auto feed = in_ch.writer();
    auto in = in_ch.reader();
    auto out = out_ch.writer();
    auto drain = out_ch.reader();
    for (int i = 0; i < per_guard; ++i) feed(i);
    std::array<int, 3> calls{};
    csp::Alternation alt{
        csp::SkipGuard([&] { ++calls[0]; }),
        csp::InputGuard(in, [&] { ++calls[1]; }),
        csp::OutputGuard(out, 1, [&] { ++calls[2]; }),
    };
    int out_of_turn = 0;
    for (int k = 0; k < 3 * per_guard; ++k)
        if (alt.fair_execute() != static_cast<std::size_t>(k % 3)) ++out_of_turn;
    CHECK(out_of_turn == 0);
    CHECK(calls == std::array<int, 3>{per_guard, per_guard, per_guard});
}

TEST_CASE("fair_execute passes over guards that are not ready and goes on after the chosen one", "[alternation][fair]") {
    csp::Channel<int> a{"fair-skip-a", csp::buffer(16)}, b{"fair-skip-b", csp::buffer(16)},
        c{"fair-skip-c", csp::buffer(16)};
    auto a_out = a.writer(), b_out = b.writer(), c_out = c.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader();
    for (int i = 0; i < 8; ++i) {
        b_out(i);
        c_out(i);
    }
    csp::Alternation alt{csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in)};
    std::vector<std::size_t> chosen;
    for (int k = 0; k < 4; ++k) chosen.push_back(alt.fair_execute());
    // a is empty: b, c, b, c.
    CHECK(chosen == std::vector<std::size_t>{1, 2, 1, 2});
    a_out(0);
    chosen.clear();
    // The last choice was c: a is next, then b, then c.
    for (int k = 0; k < 3; ++k) chosen.push_back(alt.fair_execute());
    CHECK(chosen == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("fair_select round-robins like fair_execute", "[alternation][fair][select]") {
    constexpr int per_guard = 300;
    std::vector<csp::Channel<int>> channels;
    std::vector<csp::ChannelOut<int>> outs;
    std::vector<csp::ChannelIn<int>> ins;
    for (int i = 0; i < 3; ++i) {
        channels.emplace_back("fair-select-" + std::to_string(i), csp::buffer(per_guard));
        outs.push_back(channels.back().writer());
        ins.push_back(channels.back().reader());
        for (int k = 0; k < per_guard; ++k) outs.back()(k);
    }
    csp::Alternation alt{csp::InputGuard(ins[0]), csp::InputGuard(ins[1]), csp::InputGuard(ins[2])};
    std::vector<csp::InputGuard<int>> guards;
    for (auto& in : ins) guards.emplace_back(in);
    csp::Alternation vector_alt{std::move(guards)};
    int out_of_turn = 0, wrong_value = 0;
    for (int k = 0; k < 3 * per_guard / 2; ++k) {
        auto r = alt.fair_select();
        if (r.index() != static_cast<std::size_t>(k % 3)) ++out_of_turn;
        auto [index, value] = vector_alt.fair_select();
        if (index != static_cast<std::size_t>(k % 3)) ++out_of_turn;
        // Each channel is read alternately by the two alternations, in FIFO order.
        if (held_value(r) != (k / 3) * 2 || value != std::optional<int>((k / 3) * 2 + 1)) ++wrong_value;
    }
    CHECK(out_of_turn == 0);
    CHECK(wrong_value == 0);
}

TEST_CASE("FairSelect spreads its choices over the ready guards", "[alternation][fair]") {
    constexpr int choices = 3000;
    csp::Channel<int> a{"fs-a", csp::buffer(choices)}, b{"fs-b", csp::buffer(choices)}, c{"fs-c", csp::buffer(choices)},
        d{"fs-d", csp::buffer(choices)};
    auto a_out = a.writer(), b_out = b.writer(), c_out = c.writer(), d_out = d.writer();
    auto a_in = a.reader(), b_in = b.reader(), c_in = c.reader(), d_in = d.reader();
    for (int i = 0; i < choices; ++i) {
        a_out(i);
        b_out(i);
        c_out(i);
        d_out(i);
    }
    std::array<int, 4> counts{};
    std::array<int, 4> vector_counts{};
    std::vector<csp::InputGuard<int>> guards;
    guards.emplace_back(a_in);
    guards.emplace_back(b_in);
    guards.emplace_back(c_in);
    for (int k = 0; k < choices; ++k) {
        // d is ready but disabled: it must never be chosen.
        ++counts.at(csp::FairSelect(csp::InputGuard(a_in), csp::InputGuard(b_in), csp::InputGuard(c_in),
                                    csp::InputGuard(d_in).when(false))
                        .index());
    }
    for (int k = 0; k < choices; ++k) ++vector_counts.at(csp::FairSelect(guards).first);
    CAPTURE(counts, vector_counts);
    for (int i = 0; i < 3; ++i) {
        CHECK(counts[i] > choices / 6);
        CHECK(vector_counts[i] > choices / 6);
    }
    CHECK(counts[3] == 0);
}

// ---------------------------------------------------------------------------
// Poison and retire

TEST_CASE("a poisoned channel makes its guard ready; choosing it throws", "[alternation][poison]") {
    csp::Channel<int> good{"poison-good", csp::buffer(4)}, bad{"poison-bad", csp::buffer(4)};
    auto good_out = good.writer(), bad_out = bad.writer();
    auto good_in = good.reader(), bad_in = bad.reader();
    bad_out(1);
    bad.poison();
    good_out(5);

    // Priority puts a ready guard before the poisoned one: no exception.
    auto r = csp::PriSelect(csp::InputGuard(good_in), csp::InputGuard(bad_in));
    CHECK(r.index() == 0);
    CHECK(held_value(r) == 5);
    // A skip before it wins too.
    CHECK(csp::PriSelect(csp::SkipGuard(), csp::InputGuard(bad_in)).index() == 0);
    // The poisoned guard first: ready, chosen, throws - even with a skip after it.
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(bad_in), csp::SkipGuard()), csp::ChannelPoisonException);
    CHECK_THROWS_AS(csp::PriSelect(csp::OutputGuard(bad_out, 2), csp::SkipGuard()), csp::ChannelPoisonException);
    // Alone, nothing else ready: it is the one ready guard.
    CHECK_THROWS_AS(csp::AltSelect(csp::InputGuard(good_in), csp::InputGuard(bad_in)), csp::ChannelPoisonException);
    int actions = 0;
    csp::Alternation alt{csp::InputGuard(bad_in, [&] { ++actions; }), csp::TimeoutGuard(10s, [&] { ++actions; })};
    CHECK_THROWS_AS(alt.fair_execute(), csp::ChannelPoisonException);
    CHECK(actions == 0);
}

TEST_CASE("a retired channel's guard never fires; a buffered one drains first", "[alternation][retire]") {
    csp::Channel<int> drained{"retire-drained", csp::buffer(4)};
    auto in = drained.reader();
    {
        auto out = drained.writer();
        out(1);
        out(2);
    }  // the only writer end left: retired, two values still buffered
    auto r1 = csp::PriSelect(csp::InputGuard(in), csp::SkipGuard());
    auto r2 = csp::PriSelect(csp::InputGuard(in), csp::SkipGuard());
    CHECK(r1.index() == 0);
    CHECK(held_value(r1) == 1);
    CHECK(r2.index() == 0);
    CHECK(held_value(r2) == 2);
    // Drained: retired, even beside a skip guard (API.md).
    for (int i = 0; i < 5; ++i)
        CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()), csp::ChannelRetireException);
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(in)), csp::ChannelRetireException);

    // An output guard whose readers have all left.
    csp::Channel<int> no_readers{"retire-no-readers"};
    auto out = no_readers.writer();
    no_readers.reader().retire();
    CHECK_THROWS_AS(csp::PriSelect(csp::OutputGuard(out, 1), csp::SkipGuard()), csp::ChannelRetireException);
    CHECK_THROWS_AS(csp::PriSelect(csp::OutputGuard(out, 1)), csp::ChannelRetireException);

    // Retired guards beside a live one: the live one is waited for.
    csp::Channel<int> live{"retire-live", csp::buffer(1)};
    auto live_out = live.writer();
    auto live_in = live.reader();
    live_out(8);
    auto r3 = csp::AltSelect(csp::InputGuard(in), csp::OutputGuard(out, 1), csp::InputGuard(live_in));
    CHECK(r3.index() == 2);
    CHECK(held_value(r3) == 8);
}

TEST_CASE("a guard on an end that was retired or moved from fails at once", "[alternation][retire]") {
    csp::Channel<int> channel{"used-end", csp::buffer(4)};
    auto keep_writer = channel.writer();
    auto in = channel.reader();
    auto other_in = channel.reader();  // the channel stays open
    in.retire();
    keep_writer(1);
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()), csp::ChannelRetireException);
    auto moved_to = std::move(other_in);
    CHECK_THROWS_AS(csp::PriSelect(csp::InputGuard(other_in), csp::SkipGuard()), csp::ChannelEndError);
    CHECK(csp::PriSelect(csp::InputGuard(moved_to)).index() == 0);
}

namespace {

enum class GuardKind { input, output };
enum class Event { poison, retire_one, retire_all };

const char* name_of(GuardKind kind) { return kind == GuardKind::input ? "input" : "output"; }
const char* name_of(Event event) {
    switch (event) {
        case Event::poison: return "poison";
        case Event::retire_one: return "retire one";
        case Event::retire_all: return "retire all";
    }
    return "?";
}

// What the parked chooser saw, and when the other side acted last.
struct Parked {
    Ending ending = Ending::running;
    std::size_t chosen = 99;
    int value = -1;
    Clock::duration elapsed{};
    Clock::time_point ended{};
    Clock::time_point first_event{};
    Clock::time_point last_event{};
};

}  // namespace

// A process (or main) is parked in a choice over two guards of one kind on
// channels a and b, with or without a timeout guard; the other side then
// poisons a, or retires a and later serves b, or retires a and later b.
// Buffered output guards park on a full buffer. The chooser must end only
// after the last event (a retire of one guard must not end the choice).
TEST_CASE("poison and retire reach a choice that is parked", "[alternation][poison][retire][conformance]") {
    const GuardKind kind = GENERATE(GuardKind::input, GuardKind::output);
    const Event event = GENERATE(Event::poison, Event::retire_one, Event::retire_all);
    const bool with_timeout = GENERATE(false, true);
    const int buffer = GENERATE(0, 1);
    const bool on_main = GENERATE(false, true);
    CAPTURE(csp_test::placement_name(), name_of(kind), name_of(event), with_timeout, buffer, on_main);

    // No case reaches the timeout: a retire of every guard ends the choice
    // by retire even when it has one.
    const auto timeout = 10s;
    auto a = csp_test::make_channel<int>(buffer, "parked-a");
    auto b = csp_test::make_channel<int>(buffer, "parked-b");
    Parked parked;
    std::vector<int> served;  // what the other side read from b

    auto choose = [&](auto& a_end, auto& b_end) {
        const auto start = Clock::now();
        parked.ending = csp_test::ending_of([&] {
            auto pick = [&](auto&&... guards) {
                if (with_timeout) {
                    auto r = csp::PriSelect(std::forward<decltype(guards)>(guards)..., csp::TimeoutGuard(timeout));
                    parked.chosen = r.index();
                    parked.value = held_value(r);
                } else {
                    auto r = csp::PriSelect(std::forward<decltype(guards)>(guards)...);
                    parked.chosen = r.index();
                    parked.value = held_value(r);
                }
            };
            if constexpr (std::is_same_v<std::decay_t<decltype(a_end)>, csp::ChannelIn<int>>)
                pick(csp::InputGuard(a_end), csp::InputGuard(b_end));
            else
                pick(csp::OutputGuard(a_end, 100), csp::OutputGuard(b_end, 200));
        });
        parked.ended = Clock::now();
        parked.elapsed = parked.ended - start;
    };
    // The other side holds the ends the chooser's partners would hold.
    auto act = [&](auto& a_end, auto& b_end) {
        csp::sleep(30ms);  // let the chooser park
        parked.first_event = parked.last_event = Clock::now();
        if (event == Event::poison) {
            a_end.poison();
            return;
        }
        a_end.retire();
        csp::sleep(50ms);
        parked.last_event = Clock::now();
        if (event == Event::retire_all) {
            b_end.retire();
            return;
        }
        if constexpr (std::is_same_v<std::decay_t<decltype(b_end)>, csp::ChannelOut<int>>) {
            b_end(42);
        } else {
            for (int i = 0; i <= buffer; ++i) served.push_back(b_end());
        }
    };
    auto run = [&](auto chooser_ends, auto actor_ends) {
        // With buffered output guards the chooser parks on full buffers.
        // (Filled through ends of their own, while the others hold theirs.)
        if (kind == GuardKind::output && buffer > 0) {
            auto fill_a = a.writer(), fill_b = b.writer();
            fill_a(-1);
            fill_b(-2);
        }
        std::function<void()> chooser = [&, ends = std::move(chooser_ends)]() mutable { choose(ends.first, ends.second); };
        std::function<void()> actor = [&, ends = std::move(actor_ends)]() mutable { act(ends.first, ends.second); };
        if (on_main) {
            bool actor_failed = false;
            std::thread other([&] {
                actor_failed = csp_test::ending_of(actor) != Ending::normally;
                actor = nullptr;  // its ends leave now
            });
            chooser();
            other.join();
            CHECK_FALSE(actor_failed);
        } else {
            std::vector<Body> bodies;
            bodies.push_back(std::move(chooser));
            bodies.push_back(std::move(actor));
            csp_test::run_network(std::move(bodies));
        }
    };
    if (kind == GuardKind::input)
        run(std::pair(a.reader(), b.reader()), std::pair(a.writer(), b.writer()));
    else
        run(std::pair(a.writer(), b.writer()), std::pair(a.reader(), b.reader()));

    CAPTURE(parked.ending, parked.chosen, parked.value, ms(parked.elapsed),
            ms(parked.ended - parked.first_event), ms(parked.ended - parked.last_event));
    CHECK(parked.ended >= parked.last_event);
    switch (event) {
        case Event::poison:
            CHECK(parked.ending == Ending::poisoned);
            CHECK(parked.elapsed < 5s);
            break;
        case Event::retire_one:
            // a's guard is disabled; the choice waits on and takes b.
            CHECK(parked.ending == Ending::normally);
            CHECK(parked.chosen == 1);
            if (kind == GuardKind::input) {
                CHECK(parked.value == 42);
            } else {
                const std::vector<int> expected = buffer == 0 ? std::vector<int>{200} : std::vector<int>{-2, 200};
                CHECK(served == expected);
            }
            break;
        case Event::retire_all:
            CHECK(parked.ending == Ending::retired);
            CHECK(parked.elapsed < 5s);
            break;
    }
}

// ---------------------------------------------------------------------------
// From main and from plain threads

// main parks twice in a choice over a thread's channel and a fiber's: first
// the fiber serves it, then (told by the fiber) the thread does.
TEST_CASE("main parks in a choice until a fiber or a thread serves it", "[alternation][main]") {
    csp::Channel<int> from_fiber{"to-main-from-fiber"}, from_thread{"to-main-from-thread"};
    csp::Channel<int> relay{"fiber-to-thread-relay"};
    auto fiber_in = from_fiber.reader(), thread_in = from_thread.reader();
    const auto start = Clock::now();
    csp::Spawn(csp::process([](csp::ChannelOut<int> out, csp::ChannelOut<int> tell) {
        csp::sleep(50ms);
        out(1);
        tell(0);
    })(from_fiber.writer(), relay.writer()));
    std::string thread_failure;
    std::thread thread([&, out = from_thread.writer(), told = relay.reader()]() mutable {
        try {
            told();
            std::this_thread::sleep_for(30ms);  // main is parked again by now
            out(2);
        } catch (...) {
            thread_failure = "failed: " + csp_test::message_of(std::current_exception());
        }
    });
    auto first = csp::PriSelect(csp::InputGuard(thread_in), csp::InputGuard(fiber_in));
    const auto first_wait = Clock::now() - start;
    auto second = csp::PriSelect(csp::InputGuard(thread_in), csp::InputGuard(fiber_in));
    thread.join();
    CHECK(thread_failure == "");
    CHECK(first.index() == 1);
    CHECK(held_value(first) == 1);
    CHECK(first_wait >= 50ms);
    CHECK(second.index() == 0);
    CHECK(held_value(second) == 2);
}

// A plain thread makes 3 * n choices over input from a fiber, input from
// another plain thread and output to a fiber: every choice fires exactly one
// guard, so each of the three partners is served exactly n times.
TEST_CASE("plain threads alternate with fibers and with each other", "[alternation][threads]") {
    constexpr int n = 500;
    csp::Channel<int> fiber_wire{"fiber-to-thread"}, thread_wire{"thread-to-thread"};
    csp::Channel<int> back{"thread-to-fiber"};
    std::vector<int> got;
    int fiber_got_in_order = 0;
    std::string chooser_failure;
    std::thread chooser([&, a = fiber_wire.reader(), b = thread_wire.reader(), out = back.writer()]() mutable {
        try {
            int sent = 0;
            for (int k = 0; k < 3 * n; ++k) {
                auto r = csp::FairSelect(csp::InputGuard(a), csp::InputGuard(b),
                                         csp::OutputGuard(out, sent).when(sent < n));
                if (r.index() == 2)
                    ++sent;
                else
                    got.push_back(held_value(r));
            }
        } catch (...) {
            chooser_failure = "failed: " + csp_test::message_of(std::current_exception());
        }
    });
    std::string writer_failure, network_failure;
    std::thread writer([&, out = thread_wire.writer()]() mutable {
        try {
            for (int i = 0; i < n; ++i) out(n + i);
        } catch (...) {
            writer_failure = "failed: " + csp_test::message_of(std::current_exception());
        }
    });
    try {
        csp::Parallel(csp::process([](csp::ChannelOut<int> out) {
                          for (int i = 0; i < n; ++i) out(i);
                      })(fiber_wire.writer()),
                      csp::process([&](csp::ChannelIn<int> in) {
                          for (int i = 0; i < n; ++i) fiber_got_in_order += in() == i ? 1 : 0;
                      })(back.reader()));
    } catch (const std::exception& error) {
        network_failure = error.what();
    }
    writer.join();
    chooser.join();
    CHECK(network_failure == "");
    CHECK(writer_failure == "");
    CHECK(chooser_failure == "");
    CHECK(csp_test::each_once(got, 2 * n));
    CHECK(fiber_got_in_order == n);
}

// ---------------------------------------------------------------------------
// Deadlock

// Processes are made on the line __LINE__ is read on (see deadlock.cpp).
// Nobody ever offers the other side of any guard: every end that could is
// held, unused, by a process parked on something else.
TEST_CASE("processes all parked in choices are a deadlock naming them and their channels", "[alternation][deadlock]") {
    csp::Channel<int> p{"alt-dead-p"}, q{"alt-dead-q"}, r{"alt-dead-r"}, s{"alt-dead-s"};
    const int first = __LINE__; auto one = csp::process([](csp::ChannelIn<int> x, csp::ChannelIn<int> y, csp::ChannelIn<int>) { csp::PriSelect(csp::InputGuard(x), csp::InputGuard(y)); })(p.reader(), q.reader(), r.reader());
    const int second = __LINE__; auto two = csp::process([](csp::ChannelOut<int> x, csp::ChannelOut<int>, csp::ChannelIn<int>) { csp::AltSelect(csp::OutputGuard(x, 1), csp::SkipGuard().when(false)); })(r.writer(), p.writer(), s.reader());
    const int third = __LINE__; auto three = csp::process([](csp::ChannelOut<int> x, csp::ChannelIn<int> y, csp::ChannelOut<int>) { csp::FairSelect(csp::OutputGuard(x, 2), csp::InputGuard(y)); })(s.writer(), p.reader(), q.writer());
    const std::string report =
        csp_test::deadlock_report([&] { csp::Parallel(std::move(one), std::move(two), std::move(three)); });
    CAPTURE(report);
    REQUIRE_FALSE(report.empty());
    CHECK_THAT(report, Contains(std::to_string(first)));
    CHECK_THAT(report, Contains(std::to_string(second)));
    CHECK_THAT(report, Contains(std::to_string(third)));
    CHECK_THAT(report, Contains("alt-dead-p"));
    CHECK_THAT(report, Contains("alt-dead-q"));
    CHECK_THAT(report, Contains("alt-dead-r"));
    CHECK_THAT(report, Contains("alt-dead-s"));
}

TEST_CASE("choices that a timeout will end are not a deadlock", "[alternation][deadlock]") {
    csp::Channel<int> x{"alt-live-x"}, y{"alt-live-y"};
    // Both wait on input only; one gives up after 100 ms and then writes.
    auto patient = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int>) {
        return held_value(csp::PriSelect(csp::InputGuard(in)));
    });
    auto impatient = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        auto r = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(100ms));
        out(5);
        return static_cast<int>(r.index());
    });
    std::tuple<int, int> results{};
    CHECK_NOTHROW(results = csp::Parallel(patient(x.reader(), y.writer()), impatient(y.reader(), x.writer())));
    CHECK(std::get<0>(results) == 5);
    CHECK(std::get<1>(results) == 1);
}
