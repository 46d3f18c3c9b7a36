// Deadlock reports: when every process is blocked and nothing can wake any,
// the outermost Parallel throws csp::DeadlockError naming each blocked process
// and the channel it waits on, instead of hanging. And the converse: a network
// that a timer, an io call or a plain thread will wake is not a deadlock.
//
// Processes are made on the line that __LINE__ is read on, so whatever part of
// the creation site their name is derived from, that line number is in it.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace std::chrono_literals;
using Catch::Contains;

using csp_test::deadlock_report;

TEST_CASE("a reader nobody writes to is reported with its channel's name", "[deadlock]") {
    csp::Channel<int> lonely{"lonely"};
    const int line = __LINE__; auto reader = csp::process([](csp::ChannelIn<int> in) { in(); })(lonely.reader());
    const std::string report = deadlock_report([&] { csp::Parallel(std::move(reader)); });
    CAPTURE(report);
    REQUIRE_FALSE(report.empty());
    CHECK_THAT(report, Contains("lonely"));
    CHECK_THAT(report, Contains(std::to_string(line)));
}

TEST_CASE("a two-process cycle is reported with both processes and both channels", "[deadlock]") {
    csp::Channel<int> left{"left-wire"}, right{"right-wire"};
    // Each reads before it writes: neither ever writes.
    const int first = __LINE__; auto a = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in()); })(left.reader(), right.writer());
    const int second = __LINE__; auto b = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in() + 1); })(right.reader(), left.writer());
    const std::string report = deadlock_report([&] { csp::Parallel(std::move(a), std::move(b)); });
    CAPTURE(report);
    REQUIRE_FALSE(report.empty());
    CHECK_THAT(report, Contains("left-wire"));
    CHECK_THAT(report, Contains("right-wire"));
    CHECK_THAT(report, Contains(std::to_string(first)));
    CHECK_THAT(report, Contains(std::to_string(second)));
}

// Story: a deadlock deep in a nested Parallel must surface as DeadlockError
// from the outermost one, not as a ProcessError wrapping an inner report.
TEST_CASE("a deadlock inside a nested Parallel is thrown by the outermost Parallel", "[deadlock]") {
    csp::Channel<int> lonely{"nested-lonely"};
    auto inner = csp::process([](csp::ChannelIn<int> in) { in(); });
    auto outer = csp::process([&] { csp::Parallel(inner(lonely.reader())); });
    std::string report;
    try {
        csp::Parallel(outer());
    } catch (const csp::DeadlockError& error) {
        report = error.what();
    } catch (const csp::ProcessError& error) {
        FAIL("ProcessError instead of DeadlockError: " << error.what());
    }
    CAPTURE(report);
    CHECK_THAT(report, Contains("nested-lonely"));
}

TEST_CASE("the runtime still works after a deadlock was reported", "[deadlock]") {
    csp::Channel<int> lonely{"lonely-again"};
    auto stuck = csp::process([](csp::ChannelIn<int> in) { in(); });
    CHECK_THROWS_AS(csp::Parallel(stuck(lonely.reader())), csp::DeadlockError);

    csp::Channel<int> wire{"after-deadlock"};
    auto producer = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 0; i < 100; ++i) out(i);
    });
    auto consumer = csp::process([](csp::ChannelIn<int> in) {
        int sum = 0;
        for (int i = 0; i < 100; ++i) sum += in();
        return sum;
    });
    auto results = csp::Parallel(producer(wire.writer()), consumer(wire.reader()));
    CHECK(std::get<1>(results) == 99 * 100 / 2);
}

TEST_CASE("a reader that a sleeping process will serve is not deadlocked", "[deadlock][false-positive]") {
    csp::Channel<int> wire{"served-after-sleep"};
    auto late_writer = csp::process([](csp::ChannelOut<int> out) {
        csp::sleep(300ms);
        out(5);
    });
    auto reader = csp::process([](csp::ChannelIn<int> in) { return in(); });
    int got = 0;
    CHECK_NOTHROW(got = std::get<1>(csp::Parallel(late_writer(wire.writer()), reader(wire.reader()))));
    CHECK(got == 5);
}

TEST_CASE("a reader that a process in csp::io will serve is not deadlocked", "[deadlock][false-positive]") {
    csp::Channel<int> wire{"served-after-io"};
    auto late_writer = csp::process([](csp::ChannelOut<int> out) {
        csp::io([] { std::this_thread::sleep_for(300ms); });
        out(6);
    });
    auto reader = csp::process([](csp::ChannelIn<int> in) { return in(); });
    int got = 0;
    CHECK_NOTHROW(got = std::get<1>(csp::Parallel(late_writer(wire.writer()), reader(wire.reader()))));
    CHECK(got == 6);
}

TEST_CASE("a reader that a plain thread will serve is not deadlocked", "[deadlock][false-positive]") {
    csp::Channel<int> wire{"served-by-thread"};
    std::thread feeder([out = wire.writer()]() mutable {
        std::this_thread::sleep_for(300ms);
        try {
            out(7);
        } catch (const std::exception&) {
            // the reader is gone (a wrongly reported deadlock): the checks below say so
        }
    });
    auto reader = csp::process([](csp::ChannelIn<int> in) { return in(); });
    int got = 0;
    CHECK_NOTHROW(got = std::get<0>(csp::Parallel(reader(wire.reader()))));
    feeder.join();
    CHECK(got == 7);
}

// The breaker takes the lock of each blocked plain read or write before it
// ends the wait (those waits are won without a compare-and-swap, under the
// channel lock); several processes blocked on one channel share that lock.
TEST_CASE("several readers blocked on one channel are all reported and released", "[deadlock]") {
    csp::Channel<int> lonely{"shared-lonely"};
    auto reader = csp::process([](csp::ChannelIn<int> in) { in(); });
    std::vector<csp::Process<>> readers;
    for (int i = 0; i < 3; ++i) readers.push_back(reader(lonely.reader()));
    const std::string report = deadlock_report([&] { csp::Parallel(std::move(readers)); });
    CAPTURE(report);
    REQUIRE_FALSE(report.empty());
    std::size_t mentions = 0;
    for (std::size_t at = report.find("shared-lonely"); at != std::string::npos;
         at = report.find("shared-lonely", at + 1)) {
        ++mentions;
    }
    CHECK(mentions == 3);
}

TEST_CASE("main blocked in a plain read that nobody can serve gets DeadlockError", "[deadlock]") {
    csp::Channel<int> lonely{"main-lonely"};
    auto in = lonely.reader();
    auto keep_writer = lonely.writer();  // a writer end exists, but nobody will use it
    std::string report;
    try {
        in();
        FAIL("the read returned");
    } catch (const csp::DeadlockError& error) {
        report = error.what();
    }
    CHECK_THAT(report, Contains("main-lonely"));
}

// A choice whose every guard is disabled waits for ever (STOP, API.md); on
// main too, where nothing else runs, the detector ends it with a report.
TEST_CASE("main in a choice whose every guard is disabled gets DeadlockError", "[deadlock][alternation]") {
    csp::Channel<int> off{"main-all-off", csp::buffer(1)};
    auto in = off.reader();
    auto out = off.writer();
    out(1);  // ready, but disabled
    std::string report;
    try {
        csp::PriSelect(csp::InputGuard(in).when(false), csp::SkipGuard().when(false));
        FAIL("the choice returned");
    } catch (const csp::DeadlockError& error) {
        report = error.what();
    }
    CHECK_THAT(report, Contains("STOP"));
    CHECK(in() == 1);
}
