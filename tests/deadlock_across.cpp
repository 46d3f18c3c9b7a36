// Deadlocks across OS processes (part of the multiprocess suite): a ring of
// processes waiting on each other, some of them csp::multiprocess children,
// is reported like any other deadlock, each process getting a DeadlockError
// whose report names every process of every OS process; a child that is
// merely busy, or asleep, is no deadlock.
//
// Bodies catch the DeadlockError themselves and return its message, so that
// each member's ending comes back as its result (a child's too).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Catch::Contains;
using csp_test::unreaped_children;

namespace {

// told(f): "done" when f() returns, else what stopped it.
template <class F>
std::string told(F f) {
    try {
        f();
        return "done";
    } catch (const csp::DeadlockError& e) {
        return e.what();
    } catch (const csp::ChannelRetireException&) {
        return "retired";
    } catch (const csp::ChannelPoisonException&) {
        return "poisoned";
    }
}

// A member of a ring: reads from its left, then writes to its right. In a
// ring where every member reads first, none ever writes.
const auto member = [](csp::ChannelIn<int> left, csp::ChannelOut<int> right) {
    return told([&] { right(left() + 1); });
};

// ring(placements): one member per character, 'c' a child OS process, 'f' a
// fiber of this one; member i reads channel i and writes channel i + 1.
std::vector<std::string> ring(const std::string& placements) {
    const std::size_t n = placements.size();
    std::vector<csp::Channel<int>> channels;
    for (std::size_t i = 0; i < n; ++i) channels.emplace_back(csp::Channel<int>("link-" + std::to_string(i)));
    std::vector<csp::Process<std::string>> members;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string name = "member-" + std::to_string(i);
        auto in = channels[i].reader();
        auto out = channels[(i + 1) % n].writer();
        if (placements[i] == 'c') {
            members.push_back(csp::Process<std::string>(csp::multiprocess(name, member)(in, out)));
        } else {
            members.push_back(csp::process(name, member)(in, out));
        }
    }
    channels.clear();  // (the members hold every end)
    return csp::Parallel(std::move(members));
}

}  // namespace

TEST_CASE("a ring of processes across OS processes is a deadlock report naming every member",
          "[multiprocess][deadlock]") {
    const std::string placements = GENERATE("cc", "ccc", "cf", "cfc", "ffc", "cfcf");
    CAPTURE(placements);
    const std::vector<std::string> endings = ring(placements);
    REQUIRE(endings.size() == placements.size());
    for (std::size_t i = 0; i < endings.size(); ++i) {
        CAPTURE(i, endings[i]);
        CHECK_THAT(endings[i], Contains("deadlock"));
        CHECK_THAT(endings[i], Contains("across OS processes"));
        for (std::size_t j = 0; j < endings.size(); ++j) {
            CHECK_THAT(endings[i], Contains("process 'member-" + std::to_string(j) + "' is blocked reading from channel 'link-" +
                                            std::to_string(j) + "'"));
        }
        CHECK_THAT(endings[i], Contains("multiprocess 'member-"));
        // The wait-for cycle through every OS process: each member, with the
        // OS process it is in, and each link it waits on.
        const std::size_t at = endings[i].find("wait-for cycle: ");
        REQUIRE(at != std::string::npos);
        const std::string cycle = endings[i].substr(at, endings[i].find('\n', at) - at);
        CAPTURE(cycle);
        for (std::size_t j = 0; j < endings.size(); ++j) {
            CHECK_THAT(cycle, Contains("process 'member-" + std::to_string(j) + "' (OS process "));
            CHECK_THAT(cycle, Contains("channel 'link-" + std::to_string(j) + "'"));
        }
    }
    CHECK(unreaped_children() == "");
}

TEST_CASE("after a deadlock across OS processes the network runs on", "[multiprocess][deadlock]") {
    (void)ring("cfc");
    // A pipeline through two children, every value once and in order.
    csp::Channel<int> a("a"), b("b"), c("c");
    auto relay = csp::multiprocess("relay", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        try {
            for (;;) out(in() * 2);
        } catch (const csp::ChannelRetireException&) {
            out.retire();
        }
    });
    std::vector<int> got;
    csp::Parallel(csp::process("source", [](csp::ChannelOut<int> out) {
                      for (int i = 0; i < 100; ++i) out(i);
                      out.retire();
                  })(a.writer()),
                  relay(a.reader(), b.writer()), relay(b.reader(), c.writer()),
                  csp::process("sink", [&](csp::ChannelIn<int> in) {
                      try {
                          for (;;) got.push_back(in());
                      } catch (const csp::ChannelRetireException&) {
                      }
                  })(c.reader()));
    REQUIRE(got.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(got[static_cast<std::size_t>(i)] == 4 * i);
    CHECK(unreaped_children() == "");
}

TEST_CASE("a child that computes for 2 s while the others wait for it is no deadlock",
          "[multiprocess][deadlock][false-positive]") {
    const bool sleeps = GENERATE(false, true);
    CAPTURE(sleeps);
    csp::Channel<long> result("result"), go("go");
    auto busy = csp::multiprocess("busy", [](csp::ChannelIn<long> start, csp::ChannelOut<long> out, bool sleeps) {
        const long from = start();
        long sum = from;
        if (sleeps) {
            csp::sleep(2s);
        } else {
            const auto until = std::chrono::steady_clock::now() + 2s;
            while (std::chrono::steady_clock::now() < until) {
                for (int i = 0; i < 1000; ++i) sum = sum * 31 + i;
            }
            sum = from;
        }
        out(sum + 1);
    });
    // A fiber here waits for the child's answer, main waits for both.
    long answer = 0;
    std::string failure;
    try {
        csp::Parallel(busy(go.reader(), result.writer(), sleeps),
                      csp::process("asker", [&](csp::ChannelOut<long> start, csp::ChannelIn<long> in) {
                          start(41);
                          answer = in();
                      })(go.writer(), result.reader()));
    } catch (const csp::ProcessError& e) {
        failure = e.what();
    }
    CHECK(failure == "");
    CHECK(answer == 42);
    CHECK(unreaped_children() == "");
}

TEST_CASE("a child deadlocked on its own is reported inside it, and its parent sees the failure",
          "[multiprocess][deadlock]") {
    auto alone = csp::multiprocess("alone", []() -> std::string {
        csp::Channel<int> nobody("nobody-writes");
        try {
            csp::Parallel(csp::process("stuck", [](csp::ChannelIn<int> in) { (void)in(); })(nobody.reader()));
        } catch (const csp::DeadlockError& e) {
            return e.what();
        }
        return "no report";
    });
    const std::vector<std::string> got = csp::Parallel(std::vector{alone()});
    REQUIRE(got.size() == 1);
    CHECK_THAT(got[0], Contains("deadlock"));
    CHECK_THAT(got[0], Contains("process 'stuck' is blocked reading from channel 'nobody-writes'"));
    CHECK(unreaped_children() == "");
}

TEST_CASE("a cycle through a choice and a barrier across OS processes is reported to each member",
          "[multiprocess][deadlock][alternation][barrier]") {
    // chooser (a child) waits in a choice over x and y, then writes z;
    // holder (a fiber) reads z, then syncs; syncer (a child) syncs, then
    // writes x. Each waits for the next.
    csp::Channel<int> x("x"), y("y"), z("z");
    csp::Barrier bar("bar");
    auto chooser = csp::multiprocess("chooser", [](csp::ChannelIn<int> x, csp::ChannelIn<int> y, csp::ChannelOut<int> z) {
        return told([&] {
            (void)csp::AltSelect(csp::InputGuard(x), csp::InputGuard(y));
            z(1);
        });
    });
    auto holder = csp::process("holder", [](csp::ChannelIn<int> z, csp::BarrierEnd end) {
        return told([&] {
            (void)z();
            end.sync();
        });
    });
    auto syncer = csp::multiprocess("syncer", [](csp::BarrierEnd end, csp::ChannelOut<int> x, csp::ChannelOut<int> y) {
        return told([&] {
            end.sync();
            x(1);
            y(2);
        });
    });
    const auto [chose, held, synced] = csp::Parallel(chooser(x.reader(), y.reader(), z.writer()),
                                                     holder(z.reader(), bar.end()),
                                                     syncer(bar.end(), x.writer(), y.writer()));
    for (const std::string& ending : {chose, held, synced}) {
        CAPTURE(ending);
        CHECK_THAT(ending, Contains("across OS processes"));
        CHECK_THAT(ending, Contains("process 'chooser'"));
        CHECK_THAT(ending, Contains("process 'holder' is blocked reading from channel 'z'"));
        CHECK_THAT(ending, Contains("process 'syncer'"));
        CHECK_THAT(ending, Contains("'bar'"));
        // The cycle goes through the barrier: syncer waits there for holder.
        CHECK_THAT(ending, Contains("wait-for cycle: "));
        CHECK_THAT(ending, Contains("-> barrier 'bar' -> process 'holder'"));
    }
    CHECK(unreaped_children() == "");
}

TEST_CASE("a child that catches a deadlock across OS processes and waits again is told again",
          "[multiprocess][deadlock]") {
    // Only the child's own waits end each time (its parent waits for it in
    // an OsJoin wait, which no breaker ends), so nothing crosses between one
    // deadlock and the next but the breaking itself.
    csp::Channel<int> a("never-a"), b("never-b");
    auto stubborn = csp::multiprocess("stubborn", [](csp::ChannelIn<int> a, csp::ChannelIn<int> b) {
        int told = 0;
        for (int round = 0; round < 3; ++round) {
            try {
                (void)(round % 2 ? b() : a());
            } catch (const csp::DeadlockError&) {
                ++told;
            }
        }
        return told;
    });
    const std::vector<int> told = csp::Parallel(std::vector{stubborn(a.reader(), b.reader())});
    CHECK(told == std::vector<int>{3});
    CHECK(unreaped_children() == "");
}
