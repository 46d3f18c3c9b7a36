// Stress tests: many processes, many messages, repeated. Each test is bounded
// in count (at most `max_rounds` rounds) and in time (no new round starts once
// its time budget is spent; the first round always runs), so the suite stays
// usable under `meson test --repeat` and under TSan. Registered with meson
// `suite : 'stress'`, in every placement (see tests/meson.build).
#include "support.hpp"

#include "runtime/runtime.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <thread>

using namespace std::chrono_literals;
using csp_test::Body;
using csp_test::Clock;
using csp_test::Tracked;
using csp_test::TrackedCounts;

namespace {

constexpr auto budget = 1500ms;

// Tally: what readers got of the values 0 .. total-1, each written once.
struct Tally {
    int count = 0;         // values read
    int out_of_range = 0;  // values never written
    int once = 0;          // values read exactly once
    Tally(const std::vector<std::vector<int>>& received, int total) {
        std::vector<int> seen(total, 0);
        for (const auto& one : received) {
            for (int value : one) {
                ++count;
                if (value >= 0 && value < total) ++seen[value];
                else ++out_of_range;
            }
        }
        once = static_cast<int>(std::count(seen.begin(), seen.end(), 1));
    }
};

}  // namespace

TEST_CASE("any2any: 100k messages among 8 writers and 8 readers, each read once", "[stress][any2any]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int writers = 8, readers = 8, per_writer = 12'500;
    constexpr int total = writers * per_writer;

    const int rounds = csp_test::repeat_within(3, budget, [&](int round) {
        CAPTURE(round);
        auto channel = csp_test::make_channel<int>(buffer, "any2any-stress");
        std::vector<std::vector<int>> received(readers);
        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w)
            bodies.push_back([w, out = channel.writer()]() mutable {
                for (int i = 0; i < per_writer; ++i) out(w * per_writer + i);
            });
        for (int r = 0; r < readers; ++r)
            bodies.push_back([&, r, in = channel.reader()]() mutable {
                received[r].reserve(total / readers);
                for (;;) received[r].push_back(in());
            });
        csp_test::run_network(std::move(bodies));

        const Tally got(received, total);
        CHECK(got.count == total);
        CHECK(got.out_of_range == 0);
        CHECK(got.once == total);
    });
    CHECK(rounds >= 1);
}

// Poison arrives at a random moment, from the writer or the reader side,
// while values are in flight. Nothing may hang, no value may be read twice or
// made up, and every Tracked value, read or discarded, must be destroyed.
TEST_CASE("poison at a random moment: no hang, no duplicate, no leak", "[stress][poison]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int writers = 6, readers = 6;

    csp_test::repeat_within(20, budget, [&](int round) {
        std::mt19937 random(static_cast<unsigned>(round * 7919 + buffer));
        const int poison_after = std::uniform_int_distribution<int>(0, 5000)(random);
        const bool writer_poisons = std::uniform_int_distribution<int>(0, 1)(random) == 1;
        CAPTURE(round, poison_after, writer_poisons);

        const TrackedCounts before;
        {
            auto channel = csp_test::make_channel<Tracked>(buffer, "poison-stress");
            std::vector<int> written(writers, 0);
            std::vector<std::vector<int>> received(readers);
            std::atomic<int> read_count{0};
            std::atomic<bool> poison_sent{false};
            std::atomic<int> poisoned{0};
            // The first body of the chosen side to see enough values read poisons.
            auto time_to_poison = [&](bool is_writer) {
                return is_writer == writer_poisons && read_count >= poison_after && !poison_sent.exchange(true);
            };
            std::vector<Body> bodies;
            for (int w = 0; w < writers; ++w)
                bodies.push_back([&, w, out = channel.writer()]() mutable {
                    try {
                        for (int i = 0;; ++i) {
                            if (time_to_poison(true)) out.poison();
                            out(Tracked(i * writers + w));  // distinct ids: writer w, i-th value
                            ++written[w];
                        }
                    } catch (const csp::ChannelPoisonException&) {
                        ++poisoned;
                    }
                });
            for (int r = 0; r < readers; ++r)
                bodies.push_back([&, r, in = channel.reader()]() mutable {
                    try {
                        for (;;) {
                            if (time_to_poison(false)) in.poison();
                            Tracked value = in();
                            received[r].push_back(value.value);
                            ++read_count;
                        }
                    } catch (const csp::ChannelPoisonException&) {
                        ++poisoned;
                    }
                });
            csp_test::run_network(std::move(bodies));

            CHECK(poisoned == writers + readers);
            std::vector<int> all;
            for (const auto& one : received) all.insert(all.end(), one.begin(), one.end());
            std::sort(all.begin(), all.end());
            CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
            // A value read must be one whose write completed.
            int made_up = 0;
            for (int value : all)
                if (value < 0 || value / writers >= written[value % writers]) ++made_up;
            CHECK(made_up == 0);
            CHECK(static_cast<long>(all.size()) >= poison_after);
        }
        CHECK(Tracked::live == before.live);
        CHECK(Tracked::copies == before.copies);
    });
}

TEST_CASE("a 32-stage pipeline carries 20k values in order", "[stress][pipeline]") {
    constexpr int stages = 32, count = 20'000;
    const int buffer = GENERATE(0, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    csp_test::repeat_within(3, budget, [&](int) {
        std::vector<csp::Channel<int>> wires;
        for (int i = 0; i <= stages; ++i) wires.push_back(csp_test::make_channel<int>(buffer, "stage-wire"));
        std::vector<int> got;
        got.reserve(count);
        std::vector<Body> bodies;
        bodies.push_back([&, out = wires[0].writer()]() mutable {
            for (int i = 0; i < count; ++i) out(i);
        });
        for (int s = 0; s < stages; ++s)
            bodies.push_back([in = wires[s].reader(), out = wires[s + 1].writer()]() mutable {
                try {
                    for (;;) out(in() + 1);
                } catch (const csp::ChannelRetireException&) {
                    out.retire();  // pass it on (a plain thread has no unwinding rule)
                }
            });
        bodies.push_back([&got, in = wires[stages].reader()]() mutable {
            for (;;) got.push_back(in());
        });
        csp_test::run_network(std::move(bodies));

        bool in_order = got.size() == static_cast<std::size_t>(count);
        for (std::size_t i = 0; in_order && i < got.size(); ++i) in_order = got[i] == static_cast<int>(i) + stages;
        CHECK(got.size() == static_cast<std::size_t>(count));
        CHECK(in_order);
    });
}

// A funnel: 16 writers into one channel, two readers. On several workers
// the writers meet the channel's lock held by another worker, and move to
// that worker (runtime::note_contended_by; the one they left stops stealing
// for a while): the test checks that no value is lost or doubled while they
// move, and that they did move where fibers run on several workers.
TEST_CASE("a funnel on several workers: its writers move, every value arrives once", "[stress][funnel]") {
    const int kind = GENERATE(0, 1, 2);  // unbuffered, buffer(64), infinite_buffer()
    CAPTURE(csp_test::placement_name(), kind);
    constexpr int writers = 16, readers = 2;
    const int per_writer = csp_test::scaled(20'000);
    const int total = writers * per_writer;
    const bool moves = csp_test::placement() == csp_test::Placement::fibers &&
                       csp_test::env_int("CSP_THREADS", static_cast<int>(std::thread::hardware_concurrency())) > 1;
    const std::uint64_t moved_before = csp::runtime::processes_moved();
    const auto start = Clock::now();
    // (Rounds until a move was seen, when one must be: the first
    // contention is a matter of timing. Each round is checked in full.)
    for (int round = 0;; ++round) {
        CAPTURE(round);
        csp::Channel<int> channel = kind == 0   ? csp::Channel<int>{"funnel"}
                                    : kind == 1 ? csp::Channel<int>{"funnel", csp::buffer(64)}
                                                : csp::Channel<int>{"funnel", csp::infinite_buffer()};
        std::vector<std::vector<int>> received(readers);
        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w)
            bodies.push_back([w, per_writer, out = channel.writer()]() mutable {
                for (int i = 0; i < per_writer; ++i) out(w * per_writer + i);
            });
        for (int r = 0; r < readers; ++r)
            bodies.push_back([&, r, in = channel.reader()]() mutable {
                for (;;) received[r].push_back(in());
            });
        csp_test::run_network(std::move(bodies));

        const Tally got(received, total);
        REQUIRE(got.count == total);
        REQUIRE(got.out_of_range == 0);
        REQUIRE(got.once == total);
        const bool moved = csp::runtime::processes_moved() > moved_before;
        if (round >= 2 && (!moves || moved || Clock::now() - start > 20s)) break;
    }
    if (moves) CHECK(csp::runtime::processes_moved() > moved_before);
}

// Many short networks one after another: start-up and tear-down of processes
// and channels, where leaks and races in joining hide.
TEST_CASE("many short networks in a row", "[stress][churn]") {
    const TrackedCounts before;
    int total = 0, rounds = 0;
    rounds = csp_test::repeat_within(300, budget, [&](int round) {
        auto channel = csp_test::make_channel<Tracked>(round % 3 == 0 ? 0 : round % 3 == 1 ? 1 : 16, "churn");
        std::atomic<int> sum{0};
        std::vector<Body> bodies;
        for (int w = 0; w < 2; ++w)
            bodies.push_back([out = channel.writer()]() mutable {
                for (int i = 0; i < 10; ++i) out(Tracked(1));
            });
        for (int r = 0; r < 2; ++r)
            bodies.push_back([&sum, in = channel.reader()]() mutable {
                for (;;) sum += in().value;
            });
        csp_test::run_network(std::move(bodies));
        total += sum;
    });
    CHECK(total == rounds * 20);
    CHECK(Tracked::live == before.live);
}
