// Extended rendezvous (API.md): ChannelIn::extended_read and
// csp::ExtendedInputGuard. The writer's write, or output guard, completes only
// when the action returns; a buffered value's slot stays occupied meanwhile,
// with what each buffer kind then does; an action that throws poisons the
// waiting writer; poison and deadlocks during the action. (The conformance
// suite runs extended reads any to any in every placement.)
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Catch::Contains;
using csp_test::Tracked;
using csp_test::TrackedCounts;

TEST_CASE("extended_read returns the action's result, and the write returns only after the action", "[extended]") {
    csp::Channel<int> ch{"extended"};
    std::atomic<bool> returned{false};
    int during = -1, result = 0;
    auto writer = csp::process([&](csp::ChannelOut<int> out) {
        out(21);
        returned = true;
    });
    auto reader = csp::process([&](csp::ChannelIn<int> in) {
        result = in.extended_read([&](const int& v) {
            csp::sleep(20ms);  // the writer would have returned by now if it could
            during = returned ? 1 : 0;
            return 2 * v;
        });
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(result == 42);
    CHECK(during == 0);
    CHECK(returned);
}

TEST_CASE("an output guard meeting an extended reader fires only after the action", "[extended]") {
    csp::Channel<int> ch{"extended-guard"};
    std::atomic<bool> fired{false};
    int during = -1;
    auto writer = csp::process([&](csp::ChannelOut<int> out) {
        csp::Alternation alt{csp::OutputGuard(out, 5, [&] { fired = true; })};
        alt.execute();
    });
    auto reader = csp::process([&](csp::ChannelIn<int> in) {
        csp::sleep(5ms);  // the writer's choice waits first
        in.extended_read([&](const int&) {
            csp::sleep(20ms);
            during = fired ? 1 : 0;
        });
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(during == 0);
    CHECK(fired);
}

TEST_CASE("an extended input guard: a choice that waits, and one that finds the value ready", "[extended]") {
    const bool waits = GENERATE(true, false);
    CAPTURE(waits);
    csp::Channel<int> data{"extended-choice"}, other{"extended-other"};
    std::atomic<bool> returned{false};
    int during = -1, value = 0;
    std::size_t chosen = 9;
    auto writer = csp::process([&](csp::ChannelOut<int> out) {
        if (waits) csp::sleep(10ms);
        out(7);
        returned = true;
    });
    auto reader = csp::process([&](csp::ChannelIn<int> in, csp::ChannelIn<int> quiet) {
        if (!waits) csp::sleep(10ms);
        csp::Alternation alt{csp::InputGuard(quiet), csp::ExtendedInputGuard(in, [&](const int& v) {
                                 value = v;
                                 csp::sleep(10ms);
                                 during = returned ? 1 : 0;
                             })};
        chosen = alt.pri_execute();
    });
    auto keep = csp::process([](csp::ChannelOut<int>) {});
    csp::Parallel(writer(data.writer()), reader(data.reader(), other.reader()), keep(other.writer()));
    CHECK(chosen == 1);
    CHECK(value == 7);
    CHECK(during == 0);
}

TEST_CASE("an extended input guard's select form returns the value after the action ran", "[extended]") {
    csp::Channel<std::string> ch{"extended-select"};
    std::string seen;
    auto writer = csp::process([](csp::ChannelOut<std::string> out) { out(std::string(100, 'x')); });
    auto reader = csp::process([&](csp::ChannelIn<std::string> in) {
        auto got = csp::PriSelect(csp::ExtendedInputGuard(in, [&](const std::string& s) { seen = s; }));
        CHECK(std::get<0>(got) == std::string(100, 'x'));
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(seen == std::string(100, 'x'));
}

// During an extended read of a buffered value its slot stays occupied; what a
// write finds then depends on the kind. The reader writes to its own channel
// from inside the action (a write that would wait shows as a skip).
TEST_CASE("a buffered value's slot stays occupied until the action returns, for every kind", "[extended]") {
    const TrackedCounts before;
    {
        csp::Channel<Tracked> fifo{"held-fifo", csp::buffer(1)};
        csp::Channel<Tracked> over2{"held-overwriting", csp::overwriting_buffer(2)};
        csp::Channel<Tracked> over1{"held-overwriting-1", csp::overwriting_buffer(1)};
        csp::Channel<Tracked> drop{"held-dropping", csp::dropping_buffer(1)};
        csp::Channel<Tracked> inf{"held-infinite", csp::infinite_buffer()};
        auto body = csp::process([&] {
            const auto ready = [](csp::ChannelOut<Tracked>& out, int v) {
                return csp::PriSelect(csp::OutputGuard(out, Tracked(v)), csp::SkipGuard()).index() == 0;
            };
            const auto ids = [](csp::ChannelIn<Tracked>& in) {
                std::vector<int> got;
                while (csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()).index() == 0) got.push_back(-1);
                return got;
            };
            {
                auto out = fifo.writer();
                auto in = fifo.reader();
                out(Tracked(1));
                in.extended_read([&](const Tracked& t) {
                    CHECK(t.value == 1);
                    CHECK_FALSE(ready(out, 2));  // the only slot is held
                });
                CHECK(ready(out, 2));  // free again
                CHECK(in().value == 2);
            }
            {
                auto out = over2.writer();
                auto in = over2.reader();
                out(Tracked(1));
                in.extended_read([&](const Tracked&) {
                    out(Tracked(2));  // the free slot
                    out(Tracked(3));  // full: 2, the oldest unread, goes
                });
                CHECK(in().value == 3);
                CHECK(ids(in).empty());
            }
            {
                auto out = over1.writer();
                auto in = over1.reader();
                out(Tracked(1));
                in.extended_read([&](const Tracked&) {
                    out(Tracked(2));  // every slot held, nothing unread to drop: 2 goes
                });
                CHECK(ids(in).empty());
            }
            {
                auto out = drop.writer();
                auto in = drop.reader();
                out(Tracked(1));
                in.extended_read([&](const Tracked&) { out(Tracked(2)); });  // full: 2 goes
                CHECK(ids(in).empty());
            }
            {
                auto out = inf.writer();
                auto in = inf.reader();
                out(Tracked(0));
                in.extended_read([&](const Tracked&) {
                    for (int i = 1; i <= 100; ++i) out(Tracked(i));  // never waits
                });
                for (int i = 1; i <= 100; ++i) CHECK(in().value == i);
            }
        });
        csp::Parallel(body());
    }
    CHECK(Tracked::live == before.live);  // every dropped value destroyed, once
}

TEST_CASE("a writer blocked on a held slot goes into it when the action returns", "[extended]") {
    csp::Channel<int> ch{"held-refill", csp::buffer(1)};
    std::vector<int> got;
    auto writer = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 0; i < 50; ++i) out(i);
    });
    auto reader = csp::process([&](csp::ChannelIn<int> in) {
        for (;;) {
            if (got.size() % 2) got.push_back(in());
            else in.extended_read([&](const int& v) {
                csp::yield();
                got.push_back(v);
            });
        }
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    std::vector<int> expected(50);
    for (int i = 0; i < 50; ++i) expected[i] = i;
    CHECK(got == expected);
}

TEST_CASE("poison during the action ends the waiting writer; the read itself completes", "[extended]") {
    csp::Channel<int> ch{"extended-poison"};
    bool writer_poisoned = false, read_done = false, next_poisoned = false;
    auto writer = csp::process([&](csp::ChannelOut<int> out) {
        try {
            out(1);
        } catch (const csp::ChannelPoisonException&) {
            writer_poisoned = true;
        }
    });
    auto reader = csp::process([&](csp::ChannelIn<int> in) {
        in.extended_read([&](const int&) { in.poison(); });
        read_done = true;
        try {
            in();
        } catch (const csp::ChannelPoisonException&) {
            next_poisoned = true;
        }
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(writer_poisoned);
    CHECK(read_done);
    CHECK(next_poisoned);
}

TEST_CASE("a deadlock inside the action is reported, and the held writer is not left behind", "[extended]") {
    csp::Channel<int> ch{"extended-deadlock"}, nobody{"nobody-writes"};
    auto writer = csp::process([](csp::ChannelOut<int> out) { out(1); });
    auto reader = csp::process([](csp::ChannelIn<int> in, csp::ChannelIn<int> stuck) {
        in.extended_read([&](const int&) { stuck(); });
    });
    const std::string report = csp_test::deadlock_report([&] {
        auto never_writes = nobody.writer();  // kept by main: the action's read waits for ever
        csp::Parallel(writer(ch.writer()), reader(ch.reader(), nobody.reader()));
    });
    CAPTURE(report);
    CHECK_THAT(report, Contains("nobody-writes"));
    CHECK_THAT(report, Contains("extended-deadlock"));
}

TEST_CASE("extended reads by fibers and plain threads together: each value once", "[extended]") {
    constexpr int writers = 3, per_writer = 300;
    csp::Channel<int> ch{"extended-threads"};
    std::vector<std::atomic<int>> times(writers * per_writer);
    auto writer = csp::process([](int w, csp::ChannelOut<int> out) {
        for (int i = 0; i < per_writer; ++i) out(w * per_writer + i);
    });
    auto reader = [&](csp::ChannelIn<int> in) {
        try {
            for (;;) in.extended_read([&](const int& v) { times[v].fetch_add(1); });
        } catch (const csp::ChannelRetireException&) {
        }
    };
    std::thread t1(reader, ch.reader()), t2(reader, ch.reader());
    std::vector<csp::Process<>> all;
    for (int w = 0; w < writers; ++w) all.push_back(writer(w, ch.writer()));
    all.push_back(csp::process(reader)(ch.reader()));
    csp::Parallel(std::move(all));
    t1.join();
    t2.join();
    int wrong = 0;
    for (auto& t : times) wrong += t.load() != 1;
    CHECK(wrong == 0);
}

// A held writer that poison ended may wait again, on another channel, before
// the action returns: the end of the extended read must leave that new wait
// alone (it completes when a reader of that channel takes its value).
TEST_CASE("a held writer ended by poison and waiting elsewhere is left alone when the action returns",
          "[extended]") {
    csp::Channel<int> c{"held-then-poisoned"}, d{"the-writers-next"}, go{"go"}, done{"done"};
    int got = -1;
    bool wrote_d = false;
    auto writer = csp::process([&](csp::ChannelOut<int> out, csp::ChannelOut<int> next) {
        try {
            out(1);
        } catch (const csp::ChannelPoisonException&) {
            next(99);  // waits for the late reader below
            wrote_d = true;
        }
    });
    auto reader = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> go_out, csp::ChannelOut<int> done_out) {
        in.extended_read([&](const int&) {
            go_out(1);           // the poisoner poisons c: the writer moves on to d
            csp::sleep(20ms);    // and waits there
        });
        done_out(1);
    });
    auto poisoner = csp::process([](csp::ChannelIn<int> go_in, csp::Channel<int> victim) {
        go_in();
        victim.poison();
    });
    auto late = csp::process([&](csp::ChannelIn<int> done_in, csp::ChannelIn<int> next) {
        done_in();
        got = next();
    });
    csp::Parallel(writer(c.writer(), d.writer()), reader(c.reader(), go.writer(), done.writer()),
                  poisoner(go.reader(), c), late(done.reader(), d.reader()));
    CHECK(got == 99);
    CHECK(wrote_d);
}

namespace {
// Boxy: a value whose move may throw (so the channel layer boxes it).
struct Boxy {
    std::string text;
    explicit Boxy(std::string t) : text(std::move(t)) {}
    Boxy(const Boxy&) = default;
    Boxy(Boxy&& other) noexcept(false) : text(std::move(other.text)) {}
    Boxy& operator=(Boxy&& other) noexcept(false) {
        text = std::move(other.text);
        return *this;
    }
};
}  // namespace

TEST_CASE("a boxed value's held writer gets poison, not a crash, when the action throws", "[extended]") {
    csp::Channel<Boxy> ch{"boxed-held"};
    bool writer_poisoned = false, reader_threw = false;
    auto writer = csp::process([&](csp::ChannelOut<Boxy> out) {
        try {
            out(Boxy("a value"));
        } catch (const csp::ChannelPoisonException&) {
            writer_poisoned = true;
        }
    });
    auto reader = csp::process([&](csp::ChannelIn<Boxy> in) {
        try {
            in.extended_read([](const Boxy& b) {
                if (b.text == "a value") throw std::runtime_error("no");
            });
        } catch (const std::runtime_error&) {
            reader_threw = true;
        }
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(writer_poisoned);
    CHECK(reader_threw);
}

TEST_CASE("a vector of extended input guards over different channels: each value once, each hold let go",
          "[extended]") {
    // (Each guard of the vector keeps its own channel and hold: with one slot
    // shared, the hold of the guard that fired was let go on another
    // channel, and its writer never completed.)
    constexpr int channels = 3, per = 200;
    std::vector<csp::Channel<int>> chans;
    const std::size_t capacity = GENERATE(std::size_t{0}, std::size_t{1});
    CAPTURE(capacity);
    for (int c = 0; c < channels; ++c) chans.emplace_back("extended-vector-" + std::to_string(c), csp::buffer(capacity));
    auto writer = csp::process([](csp::ChannelOut<int> out, int c) {
        for (int i = 0; i < per; ++i) out(c * per + i);
    });
    auto chooser = csp::process([](std::vector<csp::ChannelIn<int>> ins, std::vector<int>* got) {
        try {
            for (;;) {
                std::vector<csp::ExtendedInputGuard<int>> guards;
                for (auto& in : ins) guards.emplace_back(in, [got](const int& v) { got->push_back(v); });
                csp::Alternation(std::move(guards)).fair_execute();
            }
        } catch (const csp::ChannelRetireException&) {
        }
    });
    std::vector<int> got;
    std::vector<csp::ChannelIn<int>> ins;
    for (auto& ch : chans) ins.push_back(ch.reader());
    std::vector<csp::Process<>> ws;
    for (int c = 0; c < channels; ++c) ws.push_back(writer(chans[c].writer(), c));
    csp::Parallel(std::move(ws), chooser(std::move(ins), &got));
    std::sort(got.begin(), got.end());
    REQUIRE(got.size() == static_cast<std::size_t>(channels * per));
    for (int i = 0; i < channels * per; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
}
