// csp::sleep and csp::io block only the calling process. The bounds are wide
// (a shared 2-core machine, sanitizer builds) yet still fail when waiting
// blocks a whole worker: with CSP_THREADS=1 that would serialise everything.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using csp_test::Clock;

TEST_CASE("processes sleeping in Parallel sleep at the same time", "[timing][sleep]") {
    constexpr int sleepers = 5;
    auto sleeper = csp::process([] { csp::sleep(200ms); });
    const auto start = Clock::now();
    csp::Parallel(sleeper() * sleepers);
    const auto elapsed = Clock::now() - start;
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
    CHECK(elapsed >= 200ms);
    CHECK(elapsed < 700ms);  // one after another: 1000 ms
}

TEST_CASE("a sleeping process does not stop others from communicating", "[timing][sleep]") {
    std::atomic<int> clock{0};
    int sleeper_done_at = 0, talk_done_at = 0;
    csp::Channel<int> wire{"talk"};
    auto sleeper = csp::process([&] {
        csp::sleep(300ms);
        sleeper_done_at = ++clock;
    });
    auto speaker = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 0; i < 1000; ++i) out(i);
    });
    auto listener = csp::process([&](csp::ChannelIn<int> in) {
        for (int i = 0; i < 1000; ++i) in();
        talk_done_at = ++clock;
    });
    csp::Parallel(sleeper(), speaker(wire.writer()), listener(wire.reader()));
    CHECK(talk_done_at != 0);
    CHECK(talk_done_at < sleeper_done_at);
}

// A process that computes without a pause holds its worker; a sleeper whose
// timer lies on that worker must still wake on time when another worker is
// idle (it takes the timer over). The sleeper wakes the spinner itself,
// once the spinner waits for it, so the spinner runs next on the sleeper's
// worker, right where the sleeper's timer is. (With one worker nobody can
// take over: there a long computation calls csp::yield, the rule README
// states.)
TEST_CASE("a process computing without a pause does not starve a sleeper while a worker is idle",
          "[timing][sleep][starvation]") {
    if (const char* n = std::getenv("CSP_THREADS"); !n || std::string(n) == "1") {
        SUCCEED("one worker: nobody to take over (a long computation calls csp::yield)");
        return;
    }
    const auto until = Clock::now() + 600ms;
    csp::Channel<int> go{"go"};
    auto spinner = csp::process([until](csp::ChannelIn<int> in) {
        in();
        std::uint64_t spins = 0;
        while (Clock::now() < until) ++spins;  // never parks, never yields
        return spins;
    });
    auto sleeper = csp::process([until](csp::ChannelOut<int> out) {
        csp::sleep(20ms);  // the spinner is waiting by now
        out(1);
        int naps = 0;
        while (Clock::now() < until) {
            csp::sleep(10ms);
            ++naps;
        }
        return naps;
    });
    auto [spins, naps] = csp::Parallel(spinner(go.reader()), sleeper(go.writer()));
    CAPTURE(spins, naps);
    CHECK(spins > 0);
    CHECK(naps >= 15);  // about 50 when every nap ends on time; 1 when starved
}

// The same with a process the busy one woke itself: it wakes a reader and
// goes on computing without a pause. The reader was runnable on the busy
// worker only, and waited for the computation to end (600 ms) while the
// other worker idled; now the idle worker takes it over (after about 1 ms)
// and the reader's replies flow while the computation goes on.
TEST_CASE("a process woken by one computing without a pause runs on an idle worker",
          "[timing][starvation]") {
    if (const char* n = std::getenv("CSP_THREADS"); !n || std::string(n) == "1") {
        SUCCEED("one worker: nobody to take over (a long computation calls csp::yield)");
        return;
    }
    const auto until = Clock::now() + 600ms;
    csp::Channel<int> wake{"wake"};
    auto spinner = csp::process([until](csp::ChannelOut<int> out) {
        csp::sleep(20ms);  // the reader waits by now,
        out(1);            // so it becomes runnable here, on this worker
        std::uint64_t spins = 0;
        while (Clock::now() < until) ++spins;  // never parks, never yields
        return spins;
    });
    auto reader = csp::process([until](csp::ChannelIn<int> in) {
        in();
        // Running now: count naps until the spinner is done.
        int naps = 0;
        while (Clock::now() < until) {
            csp::sleep(10ms);
            ++naps;
        }
        return naps;
    });
    auto [naps, spins] = csp::Parallel(reader(wake.reader()), spinner(wake.writer()));
    CAPTURE(spins, naps);
    CHECK(spins > 0);
    CHECK(naps >= 15);  // about 55 when taken over at once; 0 while it waits for the spinner
}

TEST_CASE("csp::sleep works from main", "[timing][sleep]") {
    const auto start = Clock::now();
    csp::sleep(50ms);
    CHECK(Clock::now() - start >= 50ms);
}

TEST_CASE("csp::io runs a blocking call on a helper thread while other processes run", "[timing][io]") {
    std::atomic<int> clock{0};
    int io_done_at = 0, ticks_done_at = 0, talk_done_at = 0, io_result = 0;
    bool ran_elsewhere = false;
    csp::Channel<int> wire{"talk-during-io"};

    auto blocking = csp::process([&] {
        const auto caller = std::this_thread::get_id();
        io_result = csp::io(
            [caller, &ran_elsewhere](int milliseconds) {
                ran_elsewhere = std::this_thread::get_id() != caller;
                std::this_thread::sleep_for(std::chrono::milliseconds(milliseconds));
                return milliseconds + 1;
            },
            400);
        io_done_at = ++clock;
    });
    auto ticker = csp::process([&] {
        for (int i = 0; i < 10; ++i) csp::sleep(5ms);
        ticks_done_at = ++clock;
    });
    auto speaker = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 0; i < 500; ++i) out(i);
    });
    auto listener = csp::process([&](csp::ChannelIn<int> in) {
        for (int i = 0; i < 500; ++i) in();
        talk_done_at = ++clock;
    });
    csp::Parallel(blocking(), ticker(), speaker(wire.writer()), listener(wire.reader()));
    CHECK(io_result == 401);
    CHECK(ran_elsewhere);
    CHECK(ticks_done_at != 0);
    CHECK(ticks_done_at < io_done_at);
    CHECK(talk_done_at != 0);
    CHECK(talk_done_at < io_done_at);
}

TEST_CASE("csp::io works from main", "[timing][io]") {
    CHECK(csp::io([](int a, int b) { return a * b; }, 6, 7) == 42);
}
