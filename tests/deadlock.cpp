// Deadlock reports: when every process is blocked and nothing can wake any,
// the outermost Parallel throws csp::DeadlockError naming each blocked process
// and the channel it waits on, instead of hanging. And the converse: a network
// that a timer, an io call or a plain thread will wake is not a deadlock.
//
// Processes are made on the line that __LINE__ is read on, so whatever part of
// the creation site their name is derived from, that line number is in it.
#include "support.hpp"
#include "unserved_chooser.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <thread>
#include <unistd.h>
#include <vector>

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

// Story: Python's green processes are guests of one thread (runtime
// GuestHost). When two of them wait for each other, the detector breaks it
// from the host's own park, whose wake-ups must still rouse that host: each
// guest is told, and the host sleeps on no more.
TEST_CASE("guests of one thread in a cycle are each told of the deadlock", "[deadlock][guests]") {
    using csp::runtime::Guest;
    using csp::runtime::GuestHost;
    csp::Channel<int> left{"guest-left"}, right{"guest-right"};
    struct Job {
        csp::ChannelIn<int> in;
        csp::ChannelOut<int> out;
        std::string error;
    };
    Job jobs[2] = {{left.reader(), right.writer(), {}}, {right.reader(), left.writer(), {}}};
    const auto run = [](void* arg) noexcept {
        auto* job = static_cast<Job*>(arg);
        try {
            job->out(job->in());
            job->error = "(none)";
        } catch (const csp::DeadlockError& e) {
            job->error = e.what();
        } catch (...) {
            job->error = "(another exception)";
        }
    };
    GuestHost host;
    int left_to_end = 2;
    for (Job& job : jobs) {
        Guest* g = host.add("guest", &job);
        if (host.enter(g, run, &job)) {
            host.remove(g);
            --left_to_end;
        }
    }
    while (left_to_end > 0) {
        Guest* g = host.take();
        if (!g) {
            host.wait();  // (no timeout: a lost wake-up hangs)
            continue;
        }
        if (host.resume(g)) {
            host.remove(g);
            --left_to_end;
        }
    }
    for (const Job& job : jobs) {
        CAPTURE(job.error);
        CHECK_THAT(job.error, Contains("guest-left"));
        CHECK_THAT(job.error, Contains("guest-right"));
    }
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

// A csp::io call that waits on a channel makes its helper thread a csp
// thread for that wait; the helper goes back to its pool afterwards, and
// must not count as a running process there, or no deadlock would ever be
// found again (the second Parallel hung).
TEST_CASE("a csp::io call that waited on a channel leaves later deadlocks detectable", "[deadlock]") {
    csp::Channel<int> wire{"written-from-io"};
    auto writes_from_io = csp::process([](csp::ChannelOut<int> out) { csp::io([&] { out(7); }); });
    auto late_reader = csp::process([](csp::ChannelIn<int> in) {
        csp::sleep(50ms);  // (the write in the helper waits for this reader)
        return in();
    });
    CHECK(std::get<1>(csp::Parallel(writes_from_io(wire.writer()), late_reader(wire.reader()))) == 7);

    csp::Channel<int> never{"never-written-after-io"};
    auto stuck = csp::process("stuck-after-io", [](csp::ChannelIn<int> in) { return in(); });
    CHECK_THROWS_AS(csp::Parallel(stuck(never.reader())), csp::DeadlockError);
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

// ---------------------------------------------------------------------------
// Explanations: the wait-for cycle, and ends that no running process holds
// (API.md, "Seeing the network").

// cycle_named(report, hops): the report names the wait-for cycle through
// `hops` (process, channel, process, ...), begun at any of its processes.
bool cycle_named(const std::string& report, const std::vector<std::string>& hops) {
    for (std::size_t first = 0; first < hops.size(); first += 2) {
        std::string line = "wait-for cycle: ";
        for (std::size_t i = 0; i < hops.size(); ++i) line += hops[(first + i) % hops.size()] + " -> ";
        line += hops[first];
        if (report.find(line) != std::string::npos) return true;
    }
    return false;
}

// Story: three stages in a ring each read before they write. The report names
// the cycle, stage by stage, with the channel each waits on.
// A deadlock is broken as one: every wait of it ends with DeadlockError
// before any process it wakes runs on. Pairs of choosers that nobody can
// serve: after the deadlock the first of each pair writes to the second,
// whose choice of the deadlock included that channel. Had the breaker
// readied the first before it had ended the second's wait, the first could
// (on another worker) complete that wait with its value: the second would go
// on without its DeadlockError, and block for good.
TEST_CASE("every wait of a deadlock ends with DeadlockError before any woken process runs on",
          "[deadlock][alternation]") {
    auto chooser = unserved_chooser("chooser");
    for (int round = 0; round < 20; ++round) {
        constexpr int kPairs = 16;
        std::vector<csp::Channel<int>> a(kPairs), b(kPairs), c(kPairs), d(kPairs);
        std::vector<csp::Process<int>> all;
        for (int i = 0; i < kPairs; ++i) {
            const auto k = static_cast<std::size_t>(i);
            all.push_back(chooser(a[k].reader(), b[k].reader(), d[k].writer(), c[k].reader(), true));
            all.push_back(chooser(c[k].reader(), d[k].reader(), a[k].writer(), d[k].reader(), false));
        }
        const std::vector<int> got = csp::Parallel(std::move(all));
        for (int i = 0; i < kPairs; ++i) {
            CAPTURE(round, i);
            REQUIRE(got[static_cast<std::size_t>(2 * i)] == 100);
            REQUIRE(got[static_cast<std::size_t>(2 * i + 1)] == 107);
        }
    }
}

TEST_CASE("a ring of readers is reported as its wait-for cycle", "[deadlock][cycle]") {
    csp::Channel<int> a{"ring-a"}, b{"ring-b"}, c{"ring-c"};
    auto stage = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in()); };
    auto p = csp::process("stage-p", stage), q = csp::process("stage-q", stage), r = csp::process("stage-r", stage);
    const std::string report = deadlock_report(
        [&] { csp::Parallel(p(a.reader(), b.writer()), q(b.reader(), c.writer()), r(c.reader(), a.writer())); });
    CAPTURE(report);
    CHECK(cycle_named(report, {"process 'stage-p'", "channel 'ring-a'", "process 'stage-r'", "channel 'ring-c'",
                               "process 'stage-q'", "channel 'ring-b'"}));
    CHECK_THAT(report, !Contains("no running process holds"));  // every end is an argument here
}

// Story (issue 16): a Process built in main but never run keeps a writer end
// alive. The reader is the only process blocked; the report says why its
// channel never retires.
TEST_CASE("a writer end kept by a Process never run is named", "[deadlock][cycle]") {
    csp::Channel<int> orphan{"orphan-wire"};
    auto writer = csp::process("never-run", [](csp::ChannelOut<int> out) { out(1); })(orphan.writer());
    auto reader = csp::process("waiting-reader", [](csp::ChannelIn<int> in) {
        for (;;) in();  // until the writers retire, which they never do
    });
    const std::string report = deadlock_report([&] { csp::Parallel(reader(orphan.reader())); });
    CAPTURE(report);
    CHECK_THAT(report, Contains("channel 'orphan-wire' has 1 writer end that no running process holds"));
    CHECK_THAT(report, !Contains("wait-for cycle"));
}

// A choice waits on each of its channels: a cycle may go through any of them.
// And a process waiting for the processes it runs waits on each of them.
TEST_CASE("a cycle through a choice and through a Parallel's end is named", "[deadlock][cycle]") {
    csp::Channel<int> in1{"alt-one"}, in2{"alt-two"}, back{"alt-back"};
    // 'chooser' waits on alt-one or alt-two; 'parent' holds both writer ends
    // and runs 'child', which waits on alt-back, whose writer is 'chooser'.
    auto chooser = csp::process("chooser", [](csp::ChannelIn<int> x, csp::ChannelIn<int> y, csp::ChannelOut<int> out) {
        csp::AltSelect(csp::InputGuard(x), csp::InputGuard(y));
        out(0);
    });
    auto child = csp::process("child", [](csp::ChannelIn<int> in) { in(); });
    auto parent = csp::process("parent", [&](csp::ChannelOut<int> x, csp::ChannelOut<int> y, csp::ChannelIn<int> b) {
        csp::Parallel(child(std::move(b)));
        x(1);
        y(2);
    });
    const std::string report = deadlock_report([&] {
        csp::Parallel(chooser(in1.reader(), in2.reader(), back.writer()),
                      parent(in1.writer(), in2.writer(), back.reader()));
    });
    CAPTURE(report);
    CHECK((cycle_named(report, {"process 'parent'", "the end of the processes it runs", "process 'child'",
                                "channel 'alt-back'", "process 'chooser'", "channel 'alt-one'"}) ||
           cycle_named(report, {"process 'parent'", "the end of the processes it runs", "process 'child'",
                                "channel 'alt-back'", "process 'chooser'", "channel 'alt-two'"})));
    CHECK_THAT(report, !Contains("no running process holds"));
}

// A process that waits to read and holds the only writer end itself.
TEST_CASE("a process waiting on a channel whose other end it holds itself is a cycle of one", "[deadlock][cycle]") {
    csp::Channel<int> self{"self-wire"};
    auto selfish = csp::process("selfish", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        in();
        out(1);
    });
    const std::string report = deadlock_report([&] { csp::Parallel(selfish(self.reader(), self.writer())); });
    CAPTURE(report);
    CHECK_THAT(report, Contains("wait-for cycle: process 'selfish' -> channel 'self-wire' -> process 'selfish'"));
}

// An end the process retired is no longer its: the writer end main keeps is
// what holds the channel open, and the report says so.
TEST_CASE("an end its process retired is not counted as held", "[deadlock][cycle]") {
    csp::Channel<int> wire{"half-retired"}, never{"never-written"};
    auto keep = wire.writer();  // main's, never used
    auto quitter = csp::process("quitter", [](csp::ChannelOut<int> out, csp::ChannelIn<int> in) {
        out.retire();
        in();  // nobody writes here
    });
    auto reader = csp::process("reader", [](csp::ChannelIn<int> in) { in(); });
    auto idle_writer = never.writer();
    const std::string report = deadlock_report(
        [&] { csp::Parallel(quitter(wire.writer(), never.reader()), reader(wire.reader())); });
    CAPTURE(report);
    CHECK_THAT(report, Contains("channel 'half-retired' has 1 writer end that no running process holds"));
    CHECK_THAT(report, Contains("channel 'never-written' has 1 writer end that no running process holds"));
    CHECK_THAT(report, !Contains("wait-for cycle"));
}

// Ends in a std::vector argument count as held, one by one.
TEST_CASE("a cycle through an end given in a vector is named", "[deadlock][cycle]") {
    csp::Channel<int> req{"fan-request"};
    std::vector<csp::Channel<int>> replies;
    for (int i = 0; i < 3; ++i) replies.emplace_back("fan-reply-" + std::to_string(i));
    auto server = csp::process("server", [](std::vector<csp::ChannelIn<int>> from, csp::ChannelOut<int> ask) {
        for (auto& in : from) in();  // waits for replies before it asks: the bug
        ask(0);
    });
    auto client = csp::process("client", [](csp::ChannelIn<int> asked, csp::ChannelOut<int> reply) {
        reply(asked());
    });
    std::vector<csp::ChannelIn<int>> ins;
    for (auto& r : replies) ins.push_back(r.reader());
    std::vector<csp::Process<>> clients;
    clients.push_back(client(req.reader(), replies[0].writer()));
    const std::string report = deadlock_report([&] {
        csp::Parallel(server(std::move(ins), req.writer()), std::move(clients));
    });
    CAPTURE(report);
    CHECK(cycle_named(report, {"process 'server'", "channel 'fan-reply-0'", "process 'client'", "channel 'fan-request'"}));
}

// Story (from the review): a parent given a channel's ends hands them on to
// the processes it runs. It holds them no more, so no cycle may go through it.
TEST_CASE("ends handed on to the processes a parent runs are theirs, not the parent's", "[deadlock][cycle]") {
    csp::Channel<int> x{"handed-wire"}, y{"nobody-writes"};
    auto keep = y.writer();  // main's: never used
    auto a = csp::process("child-a", [](csp::ChannelOut<int> out, csp::ChannelIn<int> in) { out(in()); });
    auto b = csp::process("child-b", [](csp::ChannelIn<int> in) { in(); });
    auto parent = csp::process("parent", [&](csp::ChannelOut<int> w, csp::ChannelIn<int> r, csp::ChannelIn<int> never) {
        csp::Parallel(a(std::move(w), std::move(never)), b(std::move(r)));
    });
    const std::string report = deadlock_report([&] { csp::Parallel(parent(x.writer(), x.reader(), y.reader())); });
    CAPTURE(report);
    CHECK_THAT(report, !Contains("wait-for cycle"));
    CHECK_THAT(report, Contains("channel 'nobody-writes' has 1 writer end that no running process holds"));
    CHECK_THAT(report, !Contains("channel 'handed-wire' has"));
}

// ---------------------------------------------------------------------------
// Barriers in explanations (API.md: "deadlock reports name them"): a process
// waiting at a barrier waits for every process enrolled on it that has not
// synced; and enrolled ends that no process holds keep the phase from ever
// ending.

// Story: a teacher's two-phase program where one process syncs before it
// writes and the other reads before it syncs. The report names the cycle
// through the barrier and the channel.
TEST_CASE("a cycle through a barrier and a channel is named", "[deadlock][cycle][barrier]") {
    csp::Barrier phase{"phase-gate"};
    csp::Channel<int> wire{"after-gate"};
    auto early = csp::process("syncs-first", [](csp::BarrierEnd b, csp::ChannelOut<int> out) {
        b.sync();
        out(1);
    });
    auto late = csp::process("reads-first", [](csp::BarrierEnd b, csp::ChannelIn<int> in) {
        in();
        b.sync();
    });
    const std::string report = deadlock_report(
        [&] { csp::Parallel(early(phase.end(), wire.writer()), late(phase.end(), wire.reader())); });
    CAPTURE(report);
    CHECK(cycle_named(report, {"process 'syncs-first'", "barrier 'phase-gate'", "process 'reads-first'",
                               "channel 'after-gate'"}));
    CHECK_THAT(report, !Contains("no running process holds"));
}

// Story: the commonest barrier bug: main takes an end "for later" and never
// syncs it, so the workers' phase never ends. The report says so, and that
// the workers are not in a cycle.
TEST_CASE("a barrier end kept by main is named", "[deadlock][cycle][barrier]") {
    csp::Barrier phase{"kept-gate"};
    auto forgotten = phase.end();
    auto worker = csp::process("gate-worker", [](csp::BarrierEnd b) { b.sync(); });
    const std::string report = deadlock_report([&] { csp::Parallel(worker(phase.end()), worker(phase.end())); });
    CAPTURE(report);
    CHECK_THAT(report, Contains("barrier 'kept-gate' has 1 enrolled end that no running process holds"));
    CHECK_THAT(report, !Contains("wait-for cycle"));
}

// An alting barrier (BarrierGuard) is waited on like a sync; an end that
// resigned is no longer held; ends in a vector count one by one; and ends a
// parent handed on to the processes it runs are theirs.
TEST_CASE("a cycle through an alting barrier, a vector of ends and a parent's Parallel is named",
          "[deadlock][cycle][barrier]") {
    csp::Barrier phase{"alt-gate"};
    csp::Channel<int> stop{"alt-stop"}, back{"alt-back-wire"}, x{"x-wire"};
    // 'offerer' offers the barrier or waits for stop, then writes x-wire;
    // 'leaver' resigns its end and reads alt-back-wire; 'gate-parent' hands
    // its end and alt-back-wire's writer to 'gate-child', which reads
    // x-wire before it syncs.
    auto offerer = csp::process("offerer", [](std::vector<csp::BarrierEnd> ends, csp::ChannelIn<int> s,
                                              csp::ChannelOut<int> out) {
        csp::AltSelect(csp::BarrierGuard(ends[0]), csp::InputGuard(s));
        out(1);
    });
    auto leaver = csp::process("leaver", [](csp::BarrierEnd b, csp::ChannelIn<int> in) {
        b.resign();
        in();
    });
    auto child = csp::process("gate-child", [](csp::BarrierEnd b, csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        in();
        b.sync();
        out(1);
    });
    auto parent = csp::process("gate-parent", [&](csp::BarrierEnd b, csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        csp::Parallel(child(std::move(b), std::move(in), std::move(out)));
    });
    auto keep_stop = stop.writer();  // main's: never written
    std::vector<csp::BarrierEnd> ends;
    ends.push_back(phase.end());
    const std::string report = deadlock_report([&] {
        csp::Parallel(offerer(std::move(ends), stop.reader(), x.writer()), leaver(phase.end(), back.reader()),
                      parent(phase.end(), x.reader(), back.writer()));
    });
    CAPTURE(report);
    CHECK(cycle_named(report, {"process 'offerer'", "barrier 'alt-gate'", "process 'gate-child'", "channel 'x-wire'"}));
    CHECK_THAT(report, !Contains("barrier 'alt-gate' -> process 'leaver'"));
    CHECK_THAT(report, !Contains("barrier 'alt-gate' -> process 'gate-parent'"));
    CHECK_THAT(report, !Contains("barrier 'alt-gate' has"));
    CHECK_THAT(report, Contains("channel 'alt-stop' has 1 writer end that no running process holds"));
}

// A barrier whose members are all at it but one, which waits on a channel
// that a member offering the barrier in a choice would write after it: the
// cycle goes through the offer.
TEST_CASE("a cycle through a barrier offered in a choice is named", "[deadlock][cycle][barrier]") {
    csp::Barrier phase{"offered-gate"};
    csp::Channel<int> wire{"offered-wire"}, never{"offered-never"};
    auto offerer = csp::process("offers-gate", [](csp::BarrierEnd b, csp::ChannelIn<int> n, csp::ChannelOut<int> out) {
        csp::AltSelect(csp::BarrierGuard(b), csp::InputGuard(n));
        out(1);
    });
    auto reader = csp::process("reads-then-syncs", [](csp::BarrierEnd b, csp::ChannelIn<int> in) {
        in();
        b.sync();
    });
    auto keep_never = never.writer();  // main's: never written
    const std::string report = deadlock_report([&] {
        csp::Parallel(offerer(phase.end(), never.reader(), wire.writer()), reader(phase.end(), wire.reader()));
    });
    CAPTURE(report);
    CHECK_THAT(report, Contains("process 'offers-gate' is blocked in a choice over channel 'offered-never' and "
                                "barrier 'offered-gate'"));
    CHECK(cycle_named(report, {"process 'offers-gate'", "barrier 'offered-gate'", "process 'reads-then-syncs'",
                               "channel 'offered-wire'"}));
}

// A process waiting at a barrier with an end it made in its body (not an
// argument) holds it all the same: no "enrolled end that no running process
// holds" for it, and the cycle through the barrier is still named.
TEST_CASE("an end a waiting process made itself is not reported as held by nobody", "[deadlock][cycle][barrier]") {
    csp::Barrier gate{"own-gate"};
    csp::Channel<int> wire{"own-wire"};
    auto maker = csp::process("makes-its-end", [&gate](csp::ChannelOut<int> out) {
        auto mine = gate.end();
        mine.sync();
        out(1);
    });
    auto reader = csp::process("reads-before-gate", [](csp::BarrierEnd b, csp::ChannelIn<int> in) {
        in();
        b.sync();
    });
    const std::string report =
        deadlock_report([&] { csp::Parallel(maker(wire.writer()), reader(gate.end(), wire.reader())); });
    CAPTURE(report);
    CHECK_THAT(report, !Contains("barrier 'own-gate' has"));
    CHECK(cycle_named(report, {"process 'makes-its-end'", "barrier 'own-gate'", "process 'reads-before-gate'",
                               "channel 'own-wire'"}));
}

// A process that syncs one of two ends it holds waits for itself.
TEST_CASE("a process syncing one of two ends of a barrier is a cycle of one", "[deadlock][cycle][barrier]") {
    csp::Barrier gate{"double-gate"};
    auto twice = csp::process("holds-two", [](std::vector<csp::BarrierEnd> ends) { ends[0].sync(); });
    std::vector<csp::BarrierEnd> ends;
    ends.push_back(gate.end());
    ends.push_back(gate.end());
    const std::string report = deadlock_report([&] { csp::Parallel(twice(std::move(ends))); });
    CAPTURE(report);
    CHECK_THAT(report, Contains("wait-for cycle: process 'holds-two' -> barrier 'double-gate' -> process 'holds-two'"));
    CHECK_THAT(report, !Contains("barrier 'double-gate' has"));
}

// csp::write_graph at any time: while processes come and go, choose, read
// and write, a watcher draws the network again and again. Nothing it reads
// may be freed under it (run under ASan and TSan in CI), and every file is
// whole.
TEST_CASE("write_graph while the network churns draws whole files", "[graph]") {
    const std::string path = "csp-graph-churn-" + std::to_string(::getpid()) + ".dot";
    csp::Channel<int> jobs{"churn-jobs"}, results{"churn-results", csp::buffer(2)};
    std::atomic<bool> stop{false};
    auto worker = csp::process("churn-worker", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (;;) {
            const int v = in();
            // A short-lived helper per job: processes come and go.
            csp::Channel<int> inner{"churn-inner"};
            auto [got, _] = csp::Parallel(csp::process([](csp::ChannelIn<int> i) { return i(); })(inner.reader()),
                                          csp::process([v](csp::ChannelOut<int> o) { o(v); })(inner.writer()));
            out(got);
        }
    });
    // Two members of a barrier: one enrols and resigns a copy of its end
    // before each sync, the other offers it in a choice with a timeout.
    csp::Barrier dance{"churn-dance"};
    auto dancer = csp::process("churn-dancer", [&stop](csp::BarrierEnd b, bool copies) {
        while (!stop.load()) {
            if (copies) {
                csp::BarrierEnd extra = b;
                extra.resign();
                b.sync();
            } else {
                csp::AltSelect(csp::BarrierGuard(b), csp::TimeoutGuard(1ms));
            }
        }
    });
    int drawn = 0;
    long sum = 0;
    csp::Parallel(
        dancer(dance.end(), true), dancer(dance.end(), false),
        csp::process("churn-source", [&](csp::ChannelOut<int> out) {
            for (int i = 0; !stop.load(); ++i) out(i % 7);
            out.retire();
        })(jobs.writer()),
        csp::process("churn-sink", [&](csp::ChannelIn<int> in) {
            for (;;) {  // (until the workers retire: then the choice throws)
                csp::AltSelect(csp::InputGuard(in, [&](int v) { sum += v; }), csp::TimeoutGuard(1ms));
            }
        })(results.reader()),
        worker(jobs.reader(), results.writer()), worker(jobs.reader(), results.writer()),
        csp::process("churn-watcher", [&] {
            for (; drawn < 40; ++drawn) {
                csp::write_graph(path);
                std::ifstream file(path);
                const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
                REQUIRE(text.rfind("digraph csp {", 0) == 0);
                REQUIRE(text.size() > 2);
                REQUIRE(text.substr(text.size() - 2) == "}\n");
                csp::yield();
            }
            stop.store(true);
        })());
    std::remove(path.c_str());
    CHECK(drawn == 40);
}
