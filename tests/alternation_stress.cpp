// Networks of alting processes: any number of alting writers and readers on
// shared channels, the ring ("diamond") of processes alting output and input
// at once, alting on both ends of one channel, ports of Go's channel tests,
// poison at a random moment, 100 000 concurrent timeouts. The scenarios count
// exactly: each value written is read exactly once, and none is made up.
//
// Tags: [stress] scenarios are the long ones (tests/meson.build runs them as
// registrations of their own); [conformance] ones also run on plain threads.
// Long scenarios are bounded in rounds and in time (repeat_within).
#include "alternation_helpers.hpp"

#include <catch2/catch.hpp>

#include <malloc.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>

using namespace std::chrono_literals;
using csp_test::Body;
using csp_test::Choice;
using csp_test::Clock;
using csp_test::held_value;
using csp_test::name_of;
using csp_test::repeat_within;
using csp_test::select_by;
using csp_test::Tracked;
using csp_test::TrackedCounts;

namespace {

constexpr auto budget = 2s;

// How the processes of a scenario make their choices.
enum class Style { variadic, vector, alternation };

const char* name_of(Style style) {
    switch (style) {
        case Style::variadic: return "select(guards...)";
        case Style::vector: return "select(std::vector)";
        case Style::alternation: return "Alternation";
    }
    return "?";
}

}  // namespace

// ---------------------------------------------------------------------------
// Any alting writer to any alting reader

// 4 writers each alt an output of each of their values over 4 shared
// channels; 4 readers each alt an input over the same 4 channels until all
// four are retired (every writer ended; buffered channels drained first).
TEST_CASE("alting writers to alting readers over shared channels: every value read once",
          "[alternation][any2any][conformance]") {
    const int buffer = GENERATE(0, 1, 16);
    const Style style = GENERATE(Style::variadic, Style::vector, Style::alternation);
    const Choice choice = GENERATE(Choice::arbitrary, Choice::priority, Choice::fair);
    CAPTURE(csp_test::placement_name(), buffer, name_of(style), name_of(choice));
    constexpr int writers = 4, readers = 4, lanes = 4, per_writer = 250;
    constexpr int total = writers * per_writer;

    const TrackedCounts before;
    {
        std::vector<csp::Channel<Tracked>> channels;
        for (int i = 0; i < lanes; ++i)
            channels.push_back(csp_test::make_channel<Tracked>(buffer, ("lane-" + std::to_string(i)).c_str()));
        std::vector<std::vector<int>> received(readers);
        std::vector<std::array<int, lanes>> per_lane(readers);  // reads per lane, per reader
        std::atomic<int> writer_failures{0};

        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w) {
            std::vector<csp::ChannelOut<Tracked>> outs;
            for (auto& channel : channels) outs.push_back(channel.writer());
            bodies.push_back([&, w, outs = std::move(outs)]() mutable {
                for (int i = 0; i < per_writer; ++i) {
                    const int id = w * per_writer + i;
                    std::size_t chosen = 0;
                    if (style == Style::variadic) {
                        chosen = select_by(choice, csp::OutputGuard(outs[0], Tracked(id)),
                                           csp::OutputGuard(outs[1], Tracked(id)),
                                           csp::OutputGuard(outs[2], Tracked(id)),
                                           csp::OutputGuard(outs[3], Tracked(id)))
                                     .index();
                    } else if (style == Style::vector) {
                        std::vector<csp::OutputGuard<Tracked>> guards;
                        for (auto& out : outs) guards.emplace_back(out, Tracked(id));
                        chosen = select_by(choice, std::move(guards)).first;
                    } else {
                        csp::Alternation alt{csp::OutputGuard(outs[0], Tracked(id)), csp::OutputGuard(outs[1], Tracked(id)),
                                             csp::OutputGuard(outs[2], Tracked(id)), csp::OutputGuard(outs[3], Tracked(id))};
                        chosen = csp_test::execute_by(choice, alt);
                    }
                    if (chosen >= lanes) ++writer_failures;
                }
            });
        }
        for (int r = 0; r < readers; ++r) {
            std::vector<csp::ChannelIn<Tracked>> ins;
            for (auto& channel : channels) ins.push_back(channel.reader());
            bodies.push_back([&, r, ins = std::move(ins)]() mutable {
                auto& got = received[r];
                auto& lane_count = per_lane[r];
                lane_count.fill(0);
                if (style == Style::variadic) {
                    for (;;) {
                        auto v = select_by(choice, csp::InputGuard(ins[0]), csp::InputGuard(ins[1]),
                                           csp::InputGuard(ins[2]), csp::InputGuard(ins[3]));
                        got.push_back(held_value(v));
                        ++lane_count[v.index()];
                    }
                } else if (style == Style::vector) {
                    std::vector<csp::InputGuard<Tracked>> guards;
                    for (auto& in : ins) guards.emplace_back(in);
                    for (;;) {
                        auto [lane, value] = select_by(choice, guards);
                        got.push_back(value ? value->value : -1);
                        ++lane_count[lane];
                    }
                } else {
                    auto record = [&](int lane) {
                        return [&, lane](Tracked v) {
                            got.push_back(v.value);
                            ++lane_count[lane];
                        };
                    };
                    csp::Alternation alt{csp::InputGuard(ins[0], record(0)), csp::InputGuard(ins[1], record(1)),
                                         csp::InputGuard(ins[2], record(2)), csp::InputGuard(ins[3], record(3))};
                    for (;;) csp_test::execute_by(choice, alt);
                }
            });
        }
        csp_test::run_network(std::move(bodies));

        std::vector<int> all;
        for (const auto& one : received) all.insert(all.end(), one.begin(), one.end());
        CHECK(all.size() == static_cast<std::size_t>(total));
        CHECK(csp_test::each_once(all, total));
        CHECK(writer_failures == 0);
        int lane_total = 0;
        for (const auto& lanes_of_reader : per_lane)
            lane_total += std::accumulate(lanes_of_reader.begin(), lanes_of_reader.end(), 0);
        CHECK(lane_total == total);
    }
    CHECK(Tracked::live == before.live);
    // Guards given as temporaries move their values; an Alternation keeps
    // its output values (it may fire again) and sends copies.
    if (style != Style::alternation) CHECK(Tracked::copies == before.copies);
}

// The same, heavier and repeated, with more processes than channels.
TEST_CASE("alting any-to-any under load", "[alternation][any2any][stress][conformance]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int writers = 8, readers = 8, lanes = 3, per_writer = 2'000;
    constexpr int total = writers * per_writer;
    repeat_within(3, budget, [&](int round) {
        CAPTURE(round);
        std::vector<csp::Channel<int>> channels;
        for (int i = 0; i < lanes; ++i) channels.push_back(csp_test::make_channel<int>(buffer, "loaded-lane"));
        std::vector<std::vector<int>> received(readers);
        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w) {
            bodies.push_back([&, w, a = channels[0].writer(), b = channels[1].writer(), c = channels[2].writer()]() mutable {
                const Choice choice = static_cast<Choice>(w % 3);
                for (int i = 0; i < per_writer; ++i) {
                    const int id = w * per_writer + i;
                    select_by(choice, csp::OutputGuard(a, id), csp::OutputGuard(b, id), csp::OutputGuard(c, id));
                }
            });
        }
        for (int r = 0; r < readers; ++r) {
            bodies.push_back([&, r, a = channels[0].reader(), b = channels[1].reader(), c = channels[2].reader()]() mutable {
                const Choice choice = static_cast<Choice>(r % 3);
                received[r].reserve(total / readers);
                for (;;)
                    received[r].push_back(
                        held_value(select_by(choice, csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c))));
            });
        }
        csp_test::run_network(std::move(bodies));
        std::vector<int> all;
        for (const auto& one : received) all.insert(all.end(), one.begin(), one.end());
        CHECK(all.size() == static_cast<std::size_t>(total));
        CHECK(csp_test::each_once(all, total));
    });
}

// Every buffer kind with alternation on both ends: alting writers (whose
// output guards on a never-waiting kind are always ready) and alting readers
// over three channels of one kind, with a plain extended reader among them.
// Nothing is read twice or invented, an infinite buffer loses nothing, and
// every value made is destroyed exactly once (the dropped ones included).
TEST_CASE("alting writers and readers on every buffer kind: nothing read twice, invented or leaked",
          "[alternation][any2any][buffer-kinds][conformance]") {
    const int kind = GENERATE(0, 1, 2, 3);
    const char* kinds[] = {"fifo", "infinite", "overwriting", "dropping"};
    CAPTURE(csp_test::placement_name(), kinds[kind]);
    const csp::Buffer buffer = kind == 0   ? csp::buffer(2)
                               : kind == 1 ? csp::infinite_buffer()
                               : kind == 2 ? csp::overwriting_buffer(2)
                                           : csp::dropping_buffer(2);
    constexpr int writers = 4, readers = 3, lanes = 3, per_writer = 300;
    constexpr int total = writers * per_writer;
    const TrackedCounts before;
    {
        std::vector<csp::Channel<Tracked>> channels;
        for (int i = 0; i < lanes; ++i) channels.emplace_back("kind-lane-" + std::to_string(i), buffer);
        std::vector<std::vector<int>> received(readers + 1);
        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w) {
            bodies.push_back([&, w, a = channels[0].writer(), b = channels[1].writer(), c = channels[2].writer()]() mutable {
                const Choice choice = static_cast<Choice>(w % 3);
                for (int i = 0; i < per_writer; ++i) {
                    const int id = w * per_writer + i;
                    select_by(choice, csp::OutputGuard(a, Tracked(id)), csp::OutputGuard(b, Tracked(id)),
                              csp::OutputGuard(c, Tracked(id)));
                }
            });
        }
        for (int r = 0; r < readers; ++r) {
            bodies.push_back([&, r, a = channels[0].reader(), b = channels[1].reader(), c = channels[2].reader()]() mutable {
                const Choice choice = static_cast<Choice>(r % 3);
                for (;;)
                    received[r].push_back(
                        held_value(select_by(choice, csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c))));
            });
        }
        bodies.push_back([&, in = channels[1].reader()]() mutable {
            for (;;) in.extended_read([&](const Tracked& v) { received[readers].push_back(v.value); });
        });
        csp_test::run_network(std::move(bodies));
        std::vector<int> all;
        for (const auto& one : received) all.insert(all.end(), one.begin(), one.end());
        std::sort(all.begin(), all.end());
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // none twice
        CHECK((all.empty() || (all.front() >= 0 && all.back() < total)));  // none invented
        if (kind <= 1) CHECK(all.size() == static_cast<std::size_t>(total));  // fifo, infinite: none lost
    }
    CHECK(Tracked::live == before.live);
}

// ---------------------------------------------------------------------------
// The ring ("diamond")

// N processes in a ring; process i alts an output on channel i and an input
// on channel i+1 until it has sent and received K values. Every process offers
// both directions at once: an implementation that commits to one offer
// before its partner can answer deadlocks here (PyCSP up to 0.6.0 did, on
// its "diamond" of alting processes).
TEST_CASE("a ring of processes each alting an output and an input", "[alternation][ring][conformance]") {
    const int processes = GENERATE(2, 3, 4, 8);
    const int buffer = GENERATE(0, 1);
    const Choice choice = GENERATE(Choice::arbitrary, Choice::priority, Choice::fair);
    CAPTURE(csp_test::placement_name(), processes, buffer, name_of(choice));
    constexpr int per_process = 200;

    std::vector<csp::Channel<int>> ring;
    for (int i = 0; i < processes; ++i) ring.push_back(csp_test::make_channel<int>(buffer, "ring"));
    std::vector<std::vector<int>> received(processes);
    std::vector<Body> bodies;
    for (int p = 0; p < processes; ++p) {
        bodies.push_back([&, p, out = ring[p].writer(), in = ring[(p + 1) % processes].reader()]() mutable {
            int sent = 0, got = 0;
            while (sent < per_process || got < per_process) {
                auto r = select_by(choice, csp::OutputGuard(out, p * per_process + sent).when(sent < per_process),
                                   csp::InputGuard(in).when(got < per_process));
                if (r.index() == 0) {
                    ++sent;
                } else {
                    received[p].push_back(std::get<1>(r));
                    ++got;
                }
            }
        });
    }
    csp_test::run_network(std::move(bodies));

    for (int p = 0; p < processes; ++p) {
        // One writer, one reader per channel: FIFO order from the next process.
        const int from = (p + 1) % processes;
        std::vector<int> expected(per_process);
        std::iota(expected.begin(), expected.end(), from * per_process);
        CAPTURE(p);
        CHECK(received[p] == expected);
    }
}

// ---------------------------------------------------------------------------
// Alting on both ends of one channel

TEST_CASE("a choice never meets itself on a channel it alts both ends of", "[alternation][both-ends]") {
    csp::Channel<int> channel{"self"};
    auto out = channel.writer();
    auto in = channel.reader();
    for (const Choice choice : {Choice::arbitrary, Choice::priority, Choice::fair}) {
        CAPTURE(name_of(choice));
        const auto start = Clock::now();
        auto r = select_by(choice, csp::OutputGuard(out, 1), csp::InputGuard(in), csp::TimeoutGuard(30ms));
        CHECK(r.index() == 2);
        CHECK(Clock::now() - start >= 30ms);
    }
    // On a buffer the output is taken by the buffer, and read back later.
    csp::Channel<int> buffered{"self-buffered", csp::buffer(1)};
    auto b_out = buffered.writer();
    auto b_in = buffered.reader();
    auto first = csp::PriSelect(csp::InputGuard(b_in), csp::OutputGuard(b_out, 5));
    CHECK(first.index() == 1);
    auto second = csp::PriSelect(csp::OutputGuard(b_out, 6), csp::InputGuard(b_in));
    CHECK(second.index() == 1);  // the buffer is full: only the input is ready
    CHECK(std::get<1>(second) == 5);
}

// Two processes each make K choices over output and input on one unbuffered
// channel: each choice pairs with one of the other's, never with itself.
TEST_CASE("two processes alting both ends of one channel pair up", "[alternation][both-ends][conformance]") {
    const Choice choice = GENERATE(Choice::arbitrary, Choice::priority, Choice::fair);
    CAPTURE(csp_test::placement_name(), name_of(choice));
    constexpr int choices = 500;
    csp::Channel<int> channel{"both-ends"};
    std::array<std::vector<int>, 2> sent, received;
    std::vector<Body> bodies;
    for (int p = 0; p < 2; ++p) {
        bodies.push_back([&, p, out = channel.writer(), in = channel.reader()]() mutable {
            for (int k = 0; k < choices; ++k) {
                const int value = p * choices + k;
                // The output first in one process, the input first in the other.
                if (p == 0) {
                    auto r = select_by(choice, csp::OutputGuard(out, value), csp::InputGuard(in));
                    if (r.index() == 0)
                        sent[p].push_back(value);
                    else
                        received[p].push_back(std::get<1>(r));
                } else {
                    auto r = select_by(choice, csp::InputGuard(in), csp::OutputGuard(out, value));
                    if (r.index() == 1)
                        sent[p].push_back(value);
                    else
                        received[p].push_back(std::get<0>(r));
                }
            }
        });
    }
    csp_test::run_network(std::move(bodies));
    CHECK(sent[0].size() + received[0].size() == choices);
    CHECK(sent[1].size() + received[1].size() == choices);
    // What one sent, the other received, in order; nobody received its own.
    CHECK(received[1] == sent[0]);
    CHECK(received[0] == sent[1]);
}

// Four processes alt both ends of one shared channel, each for up to 200
// communications; once all four have started, a choice that finds no
// partner for 50 ms (the others are done) ends the process. Unbuffered, a
// value never goes back to its sender; buffered it may. Every value sent is
// received once (those left in the buffer are drained after the network).
TEST_CASE("several processes alting both ends of one shared channel", "[alternation][both-ends][conformance]") {
    const int buffer = GENERATE(0, 4);
    const Choice choice = GENERATE(Choice::arbitrary, Choice::fair);
    CAPTURE(csp_test::placement_name(), buffer, name_of(choice));
    constexpr int processes = 4, choices = 200;
    auto channel = csp_test::make_channel<int>(buffer, "shared-both-ends");
    auto drain = channel.reader();
    std::vector<std::vector<int>> sent(processes), received(processes);
    std::atomic<int> started{0};
    std::vector<Body> bodies;
    for (int p = 0; p < processes; ++p) {
        bodies.push_back([&, p, out = channel.writer(), in = channel.reader()]() mutable {
            ++started;
            int made = 0, next = 0;
            while (made < choices) {
                const int value = p * choices + next;
                auto r = select_by(choice, csp::OutputGuard(out, value), csp::InputGuard(in), csp::TimeoutGuard(50ms));
                if (r.index() == 0) {
                    sent[p].push_back(value);
                    ++next;
                    ++made;
                } else if (r.index() == 1) {
                    received[p].push_back(std::get<1>(r));
                    ++made;
                } else if (started == processes) {
                    break;
                }
            }
        });
    }
    csp_test::run_network(std::move(bodies));
    std::vector<int> all_sent, all_received;
    int own = 0;
    for (int p = 0; p < processes; ++p) {
        all_sent.insert(all_sent.end(), sent[p].begin(), sent[p].end());
        all_received.insert(all_received.end(), received[p].begin(), received[p].end());
        for (int v : received[p]) own += v / choices == p ? 1 : 0;
    }
    // The writers have all left: what is left in the buffer, then retire.
    try {
        for (;;) all_received.push_back(drain());
    } catch (const csp::ChannelRetireException&) {
    }
    std::sort(all_sent.begin(), all_sent.end());
    std::sort(all_received.begin(), all_received.end());
    CHECK(all_sent == all_received);
    CHECK_FALSE(all_sent.empty());
    if (buffer == 0) CHECK(own == 0);
}

// ---------------------------------------------------------------------------
// Ports of Go's channel tests (written anew from what each test checks)

// Port of Go's test/chan/doubleselect.go: a sender selects over sends of the
// same value on four channels, four forwarders pass their channel's values on
// to one shared channel, and the receiver checks that no value arrives twice
// (two cases of one select must never both fire). Go runs it with
// GOMAXPROCS(2); here it runs on 1 and 4 workers and on plain threads. This
// port also checks that every value arrives.
TEST_CASE("Go doubleselect: no select fires two of its cases", "[alternation][go][stress][conformance]") {
    const Choice choice = GENERATE(Choice::arbitrary, Choice::priority, Choice::fair);
    CAPTURE(csp_test::placement_name(), name_of(choice));
    const int n = csp_test::scaled(20'000);
    std::array<csp::Channel<int>, 4> lanes{csp::Channel<int>{"double-1"}, csp::Channel<int>{"double-2"},
                                           csp::Channel<int>{"double-3"}, csp::Channel<int>{"double-4"}};
    csp::Channel<int> merged{"double-merged"};
    std::vector<char> seen(n, 0);
    int duplicates = 0, out_of_range = 0;

    std::vector<Body> bodies;
    bodies.push_back([&, c1 = lanes[0].writer(), c2 = lanes[1].writer(), c3 = lanes[2].writer(),
                      c4 = lanes[3].writer()]() mutable {
        for (int i = 0; i < n; ++i)
            select_by(choice, csp::OutputGuard(c1, i), csp::OutputGuard(c2, i), csp::OutputGuard(c3, i),
                      csp::OutputGuard(c4, i));
    });  // its ends leave: the forwarders see retire
    for (auto& lane : lanes) {
        bodies.push_back([in = lane.reader(), out = merged.writer()]() mutable {
            for (;;) out(in());
        });
    }
    bodies.push_back([&, in = merged.reader()]() mutable {
        for (;;) {
            const int v = in();
            if (v < 0 || v >= n)
                ++out_of_range;
            else if (seen[v]++ != 0)
                ++duplicates;
        }
    });
    csp_test::run_network(std::move(bodies));
    CHECK(duplicates == 0);
    CHECK(out_of_range == 0);
    CHECK(std::count(seen.begin(), seen.end(), 1) == n);
}

namespace {

// Bytes of heap in use (glibc), for the footprint checks below. Sanitizers
// bring their own allocators, so there the checks are skipped.
long heap_in_use() {
    struct mallinfo2 info = mallinfo2();
    return static_cast<long>(info.uordblks + info.hblkhd);
}

}  // namespace

// Port of Go's test/chan/select2.go: 100 000 selects over a channel that is
// served and a "dummy" one that never is must not use up memory: a second run
// of 100 000 may not grow the heap noticeably (Go allows 110 000 bytes). The
// dummy guard must never fire. With a long TimeoutGuard in each select, the
// timers of the choices that ended early must not pile up either.
TEST_CASE("Go select2: many selects do not grow the footprint", "[alternation][go][stress][conformance]") {
    const bool with_timeout = GENERATE(false, true);
    CAPTURE(csp_test::placement_name(), with_timeout);
    // Plain threads wake each other through the kernel: fewer there.
    const bool threads = csp_test::placement() == csp_test::Placement::threads;
    const int n = csp_test::scaled(threads ? 20'000 : 100'000);
    std::atomic<int> dummy_fired{0}, timeouts{0};

    auto run_once = [&] {
        csp::Channel<int> channel{"select2"}, dummy{"select2-dummy"};
        auto keep_dummy_open = dummy.writer();
        std::vector<Body> bodies;
        bodies.push_back([&, out = channel.writer()]() mutable {
            for (int i = 0; i < n; ++i) out(1);
        });
        bodies.push_back([&, in = channel.reader(), never = dummy.reader()]() mutable {
            for (int i = 0; i < n; ++i) {
                if (with_timeout) {
                    auto r = csp::AltSelect(csp::InputGuard(in), csp::InputGuard(never), csp::TimeoutGuard(1h));
                    if (r.index() == 1) ++dummy_fired;
                    if (r.index() == 2) ++timeouts;
                } else {
                    auto r = csp::AltSelect(csp::InputGuard(in), csp::InputGuard(never));
                    if (r.index() == 1) ++dummy_fired;
                }
            }
        });
        csp_test::run_network(std::move(bodies));
    };
    run_once();  // warm up: stacks, queues, timer heaps reach their size
    const long before = heap_in_use();
    run_once();
    const long after = heap_in_use();
    CAPTURE(before, after, after - before);
    CHECK(dummy_fired == 0);
    CHECK(timeouts == 0);
    if (csp_test::kScale == 1) CHECK(after - before < 1'000'000);  // 10 bytes a select (glibc's heap)
}

namespace {

template <class T>
T sample_value() {
    if constexpr (std::is_same_v<T, std::string>)
        return "hello";
    else if constexpr (std::is_same_v<T, bool>)
        return true;
    else
        return static_cast<T>(123);
}

}  // namespace

// Port of Go's test/chan/nonblock.go: a choice with a SkipGuard is a
// non-blocking operation. On an empty channel a non-blocking receive never
// succeeds, and on an unbuffered channel with no reader a non-blocking send
// never does; once a partner is parked on the other side, retrying
// (sleeping between tries, a bounded number of times) succeeds and the value
// arrives intact. For several element types, unbuffered and buffered.
TEMPLATE_TEST_CASE("Go nonblock: choices with a SkipGuard never block", "[alternation][go][conformance]",
                   std::int32_t, std::int64_t, bool, std::string) {
    const int buffer = GENERATE(0, 1);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int max_tries = 20'000;
    auto channel = csp_test::make_channel<TestType>(buffer, "nonblock");
    csp::Channel<int> go{"nonblock-go"}, done{"nonblock-done"};
    bool empty_receive_blocked = true, lonely_send_skipped = true, partner_got_value = false, got_value = false;
    int send_tries = 0, receive_tries = 0;

    std::vector<Body> bodies;
    bodies.push_back([&, out = channel.writer(), in = channel.reader(), go_out = go.writer(),
                      done_in = done.reader()]() mutable {
        empty_receive_blocked = csp::PriSelect(csp::InputGuard(in), csp::SkipGuard()).index() == 1;
        if (buffer == 0)
            lonely_send_skipped = csp::PriSelect(csp::OutputGuard(out, sample_value<TestType>()), csp::SkipGuard()).index() == 1;
        go_out(1);  // the partner reads once
        while (csp::PriSelect(csp::OutputGuard(out, sample_value<TestType>()), csp::SkipGuard()).index() != 0 &&
               ++send_tries < max_tries)
            csp::sleep(100us);
        done_in();
        go_out(2);  // the partner writes once
        if (buffer > 0) done_in();  // its write has completed into the buffer
        for (;;) {
            auto r = csp::PriSelect(csp::InputGuard(in), csp::SkipGuard());
            if (r.index() == 0) {
                got_value = std::get<0>(r) == sample_value<TestType>();
                break;
            }
            if (++receive_tries >= max_tries) break;
            csp::sleep(100us);
        }
        if (buffer == 0) done_in();
    });
    bodies.push_back([&, out = channel.writer(), in = channel.reader(), go_in = go.reader(),
                      done_out = done.writer()]() mutable {
        go_in();
        partner_got_value = in() == sample_value<TestType>();
        done_out(1);
        go_in();
        out(sample_value<TestType>());
        done_out(2);
    });
    csp_test::run_network(std::move(bodies));
    CHECK(empty_receive_blocked);
    CHECK(lonely_send_skipped);
    CHECK(send_tries < max_tries);
    CHECK(partner_got_value);
    CHECK(receive_tries < max_tries);
    CHECK(got_value);
}

// ---------------------------------------------------------------------------
// Large choices, timeouts at scale, poison at random, fairness under load

// More guards than fit the small on-stack arrays: 100 writers, each on a
// channel of its own, one reader choosing over all 100 until all retire.
TEST_CASE("a choice over 100 channels", "[alternation][vector][conformance]") {
    const int buffer = GENERATE(0, 2);
    const bool fair = GENERATE(false, true);
    CAPTURE(csp_test::placement_name(), buffer, fair);
    constexpr int channels_count = 100, per_writer = 10;
    std::vector<csp::Channel<int>> channels;
    for (int i = 0; i < channels_count; ++i) channels.push_back(csp_test::make_channel<int>(buffer, "wide"));
    std::vector<int> got;
    std::vector<Body> bodies;
    for (int i = 0; i < channels_count; ++i)
        bodies.push_back([i, out = channels[i].writer()]() mutable {
            for (int k = 0; k < per_writer; ++k) out(i * per_writer + k);
        });
    std::vector<csp::ChannelIn<int>> ins;
    for (auto& channel : channels) ins.push_back(channel.reader());
    bodies.push_back([&, ins = std::move(ins)]() mutable {
        std::vector<csp::InputGuard<int>> guards;
        for (auto& in : ins) guards.emplace_back(in, [&](int v) { got.push_back(v); });
        csp::Alternation alt{std::move(guards)};
        for (;;) fair ? alt.fair_execute() : alt.execute();
    });
    csp_test::run_network(std::move(bodies));
    CHECK(csp_test::each_once(got, channels_count * per_writer));
}

// 100 000 processes, each in a choice over an input nobody ever writes and a
// short timeout, all at once: every one times out, none early. (TSan keeps a
// thread state of its own for every fiber and cannot map 100 000 of them:
// kScale shrinks them there.)
TEST_CASE("100 000 concurrent TimeoutGuards all time out", "[alternation][timeout][stress]") {
    constexpr int processes = csp_test::scaled(100'000);
    constexpr auto timeout = 50ms;
    csp::Channel<int> silent{"silent-100k"};
    auto keep_open = silent.writer();
    std::atomic<int> timed_out{0}, wrong{0}, early{0}, failed{0};
    auto chooser = csp::process([&](csp::ChannelIn<int> in) {
        try {
            const auto start = Clock::now();
            auto r = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(timeout));
            if (Clock::now() - start < timeout) ++early;
            if (r.index() == 1)
                ++timed_out;
            else
                ++wrong;
        } catch (...) {
            ++failed;
        }
    });
    std::vector<csp::Process<>> all;
    all.reserve(processes);
    for (int i = 0; i < processes; ++i) all.push_back(chooser(silent.reader()));
    const auto start = Clock::now();
    csp::Parallel(std::move(all));
    const auto elapsed = Clock::now() - start;
    CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
    CHECK(timed_out == processes);
    CHECK(wrong == 0);
    CHECK(early == 0);
    CHECK(failed == 0);
    CHECK(elapsed < 60s);
}

// Poison arrives at a random moment while alting writers and readers are
// busy on three shared channels. Nothing may hang; no value may be read twice
// or made up; unbuffered, every value whose output guard fired was read (a
// fired output guard is a completed rendezvous); every Tracked is destroyed.
TEST_CASE("poison at a random moment among alting processes", "[alternation][poison][stress][conformance]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int writers = 4, readers = 4;

    repeat_within(15, budget, [&](int round) {
        std::mt19937 random(static_cast<unsigned>(round * 104729 + buffer));
        const int poison_after = std::uniform_int_distribution<int>(0, 3000)(random);
        const bool writer_poisons = std::uniform_int_distribution<int>(0, 1)(random) == 1;
        const int poisoned_lane = std::uniform_int_distribution<int>(0, 2)(random);
        CAPTURE(round, poison_after, writer_poisons, poisoned_lane);

        const TrackedCounts before;
        {
            std::vector<csp::Channel<Tracked>> lanes;
            for (int i = 0; i < 3; ++i) lanes.push_back(csp_test::make_channel<Tracked>(buffer, "poison-lane"));
            std::vector<int> written(writers, 0);
            std::vector<std::vector<int>> received(readers);
            std::atomic<int> operations{0}, poisoned{0}, ended_otherwise{0};
            std::atomic<bool> poison_sent{false};
            // The first process of the chosen side to see enough operations
            // poisons. (Not a fixed process: on one worker a pair of busy
            // processes can keep the others from running for a long time.)
            auto time_to_poison = [&](bool is_writer) {
                return is_writer == writer_poisons && operations >= poison_after && !poison_sent.exchange(true);
            };
            std::vector<Body> bodies;
            for (int w = 0; w < writers; ++w) {
                bodies.push_back([&, w, a = lanes[0].writer(), b = lanes[1].writer(), c = lanes[2].writer()]() mutable {
                    const Choice choice = static_cast<Choice>(w % 3);
                    try {
                        for (int i = 0;; ++i) {
                            if (time_to_poison(true)) (poisoned_lane == 0 ? a : poisoned_lane == 1 ? b : c).poison();
                            const int id = i * writers + w;  // writer w, i-th value
                            select_by(choice, csp::OutputGuard(a, Tracked(id)), csp::OutputGuard(b, Tracked(id)),
                                      csp::OutputGuard(c, Tracked(id)));
                            ++written[w];
                            ++operations;
                        }
                    } catch (const csp::ChannelPoisonException&) {
                        ++poisoned;
                    } catch (...) {
                        ++ended_otherwise;
                    }
                });
            }
            for (int r = 0; r < readers; ++r) {
                bodies.push_back([&, r, a = lanes[0].reader(), b = lanes[1].reader(), c = lanes[2].reader()]() mutable {
                    const Choice choice = static_cast<Choice>(r % 3);
                    try {
                        for (;;) {
                            if (time_to_poison(false)) (poisoned_lane == 0 ? a : poisoned_lane == 1 ? b : c).poison();
                            auto v = select_by(choice, csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c));
                            received[r].push_back(held_value(v));
                            ++operations;
                        }
                    } catch (const csp::ChannelPoisonException&) {
                        ++poisoned;
                    } catch (...) {  // retire too: the poisoned lane stays ready, never disabled
                        ++ended_otherwise;
                    }
                });
            }
            csp_test::run_network(std::move(bodies));

            CHECK(poisoned == writers + readers);
            CHECK(ended_otherwise == 0);
            std::vector<int> all;
            for (const auto& one : received) all.insert(all.end(), one.begin(), one.end());
            std::sort(all.begin(), all.end());
            CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
            int made_up = 0;
            for (int value : all)
                if (value < 0 || value / writers >= written[value % writers]) ++made_up;
            CHECK(made_up == 0);
            const int total_written = std::accumulate(written.begin(), written.end(), 0);
            if (buffer == 0) CHECK(static_cast<int>(all.size()) == total_written);
            CHECK(static_cast<int>(all.size()) <= total_written);
        }
        CHECK(Tracked::live == before.live);
        CHECK(Tracked::copies == before.copies);
    });
}

// Three writers keep three channels busy; a reader makes 600 fair choices,
// pausing briefly after each so that the writer it served can offer again
// (without the pause, on one worker the woken writer and the reader hand the
// worker to each other and the other writers do not get to run at all: a
// scheduler matter, not the choice's). Fair choice may not starve any of
// them: each gets more than a sixth. (Priority would give the first all.)
TEST_CASE("fair choice does not starve busy writers", "[alternation][fair][stress][conformance]") {
    const int buffer = GENERATE(0, 4);
    const bool free_function = GENERATE(false, true);
    CAPTURE(csp_test::placement_name(), buffer, free_function);
    constexpr int choices = 600;
    std::vector<csp::Channel<int>> lanes;
    for (int i = 0; i < 3; ++i) lanes.push_back(csp_test::make_channel<int>(buffer, "busy"));
    std::array<int, 3> counts{};
    std::vector<Body> bodies;
    for (int w = 0; w < 3; ++w) {
        bodies.push_back([w, out = lanes[w].writer()]() mutable {
            for (;;) out(w);
        });
    }
    bodies.push_back([&, a = lanes[0].reader(), b = lanes[1].reader(), c = lanes[2].reader()]() mutable {
        csp::Alternation alt{csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c)};
        for (int k = 0; k < choices; ++k) {
            if (free_function)
                ++counts.at(csp::FairSelect(csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c)).index());
            else
                ++counts.at(alt.fair_execute());
            csp::sleep(100us);
        }
        a.poison();
        b.poison();
        c.poison();
    });
    csp_test::run_network(std::move(bodies));
    CAPTURE(counts);
    for (int count : counts) CHECK(count > choices / 6);
    CHECK(std::accumulate(counts.begin(), counts.end(), 0) == choices);
}

// Port of Go's TestPseudoRandomSend, and of its counterpart for inputs: a
// choice that has to wait, with two guards on one unbuffered channel, must
// not always give the partner that arrives later the first guard. A
// FairSelect that waits queues its guards in a fresh random order each time
// (before, argument order: 100 ones and 0 zeros), a fair_execute from the
// guard after the one chosen last (before: 100 to 0).
TEST_CASE("a waiting fair choice is fair between guards on one channel", "[alternation][fair][go]") {
    const bool inputs = GENERATE(false, true);
    const bool random = GENERATE(true, false);
    CAPTURE(inputs, random);
    constexpr int choices = 200;
    csp::Channel<int> shared{"fair-shared"};
    std::array<int, 2> fired{0, 0};
    // The chooser; its partner waits a little before each communication,
    // so that the chooser is the one waiting.
    auto chooser = csp::process([&](csp::ChannelOut<int> out, csp::ChannelIn<int> in) {
        if (inputs) {
            csp::Alternation alt{csp::InputGuard(in, [&] { ++fired[0]; }), csp::InputGuard(in, [&] { ++fired[1]; })};
            for (int k = 0; k < choices; ++k) {
                if (random) {
                    auto r = csp::FairSelect(csp::InputGuard(in), csp::InputGuard(in));
                    ++fired[r.index()];
                } else {
                    alt.fair_execute();
                }
            }
        } else {
            csp::Alternation alt{csp::OutputGuard(out, 0), csp::OutputGuard(out, 1)};
            for (int k = 0; k < choices; ++k) {
                if (random) (void)csp::FairSelect(csp::OutputGuard(out, 0), csp::OutputGuard(out, 1));
                else alt.fair_execute();
            }
        }
    });
    auto partner = csp::process([&](csp::ChannelOut<int> out, csp::ChannelIn<int> in) {
        for (int k = 0; k < choices; ++k) {
            csp::sleep(100us);
            if (inputs) out(k);
            else ++fired[in()];
        }
    });
    csp::Parallel(chooser(shared.writer(), shared.reader()), partner(shared.writer(), shared.reader()));
    CAPTURE(fired[0], fired[1]);
    CHECK(fired[0] + fired[1] == choices);
    if (random) {
        // Binomial(200, 1/2): outside 60..140 with probability below 1e-8.
        CHECK(fired[0] >= 60);
        CHECK(fired[1] >= 60);
    } else {
        // Round-robin: they take turns, whether the choice waits or not.
        CHECK(fired[0] >= choices / 2 - 1);
        CHECK(fired[1] >= choices / 2 - 1);
    }
}
