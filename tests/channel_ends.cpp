// Channel ends used directly from main: end counting, retire and poison
// rules, and misuse. These need no network; they run in every registration
// of the conformance executable because main is itself a placement (API.md:
// channels work from main and plain threads with no set-up call).
//
// Where a wrong implementation would block instead of throwing, the channel is
// buffered and primed so that the wrong behaviour shows as a failed check
// rather than a hang.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

using csp_test::Tracked;
using csp_test::TrackedCounts;

TEST_CASE("each writer end and each copy joins the count", "[conformance][retire][ends]") {
    csp::Channel<int> channel{"writer-count", csp::buffer(4)};
    auto in = channel.reader();
    auto first = channel.writer();
    {
        auto copy = first;
        copy(1);
    }  // the copy left; `first` is still in
    first(2);
    CHECK(in() == 1);
    CHECK(in() == 2);

    auto second = channel.writer();
    first.retire();
    second(3);  // still open: `second` is in
    CHECK(in() == 3);
    second.retire();
    CHECK_THROWS_AS(in(), csp::ChannelRetireException);
}

TEST_CASE("each reader end and each copy joins the count", "[conformance][retire][ends]") {
    csp::Channel<int> channel{"reader-count", csp::buffer(4)};
    auto out = channel.writer();
    auto first = channel.reader();
    auto copy = first;
    first.retire();
    out(5);  // still open: `copy` is in
    CHECK(copy() == 5);
    copy.retire();
    CHECK_THROWS_AS(out(6), csp::ChannelRetireException);
}

TEST_CASE("csp::retire retires every end it is given", "[conformance][retire][ends]") {
    csp::Channel<int> channel{csp::buffer(4)};
    auto in = channel.reader();
    auto first = channel.writer();
    auto second = channel.writer();
    first(7);
    csp::retire(first, second);
    CHECK(in() == 7);  // drained first
    CHECK_THROWS_AS(in(), csp::ChannelRetireException);
}

TEST_CASE("csp::retire and csp::poison take an end made for the call", "[conformance][retire][poison][ends]") {
    csp::Channel<int> retired{"retired-by-a-temporary"}, poisoned{"poisoned-by-a-temporary"};
    auto in = retired.reader();
    csp::retire(retired.writer());  // (its only writer end: the channel retires)
    CHECK_THROWS_AS(in(), csp::ChannelRetireException);
    auto other = poisoned.reader();
    csp::poison(poisoned.writer());
    CHECK_THROWS_AS(other(), csp::ChannelPoisonException);
}

TEST_CASE("reading from a channel whose every writer end is gone throws retire", "[conformance][retire][ends]") {
    csp::Channel<int> unbuffered{"gone-writers"};
    auto in = unbuffered.reader();
    { auto out = unbuffered.writer(); }
    CHECK_THROWS_AS(in(), csp::ChannelRetireException);

    csp::Channel<int> buffered{"gone-writers-buffered", csp::buffer(2)};
    auto buffered_in = buffered.reader();
    { auto out = buffered.writer(); out(9); }
    CHECK(buffered_in() == 9);
    CHECK_THROWS_AS(buffered_in(), csp::ChannelRetireException);
}

TEST_CASE("writing to a channel whose every reader end is gone throws retire", "[conformance][retire][ends]") {
    csp::Channel<int> unbuffered{"gone-readers"};
    auto out = unbuffered.writer();
    { auto in = unbuffered.reader(); }
    CHECK_THROWS_AS(out(1), csp::ChannelRetireException);

    csp::Channel<int> buffered{"gone-readers-buffered", csp::buffer(2)};
    auto buffered_out = buffered.writer();
    { auto in = buffered.reader(); }
    CHECK_THROWS_AS(buffered_out(1), csp::ChannelRetireException);
}

TEST_CASE("channel handles are copies naming the same channel", "[conformance][ends]") {
    csp::Channel<int> original{csp::buffer(2)};
    csp::Channel<int> copy = original;
    auto out = copy.writer();
    auto in = original.reader();
    out(3);
    CHECK(in() == 3);
}

TEST_CASE("poison discards buffered items and fails every later operation", "[conformance][poison][ends]") {
    enum Poisoner { by_writer_end, by_reader_end, by_channel, by_free_function };
    const int poisoner = GENERATE(by_writer_end, by_reader_end, by_channel, by_free_function);
    CAPTURE(poisoner);
    const TrackedCounts before;
    {
        csp::Channel<Tracked> channel{"poison-buffer", csp::buffer(8)};
        auto in = channel.reader();
        auto out = channel.writer();
        for (int i = 0; i < 5; ++i) out(Tracked(i));
        switch (poisoner) {
            case by_writer_end: out.poison(); break;
            case by_reader_end: in.poison(); break;
            case by_channel: channel.poison(); break;
            default: csp::poison(in, out); break;
        }
        CHECK_THROWS_AS(in(), csp::ChannelPoisonException);
        CHECK_THROWS_AS(out(Tracked(99)), csp::ChannelPoisonException);
        auto late_reader = channel.reader();  // a new end of a poisoned channel is poisoned too
        CHECK_THROWS_AS(late_reader(), csp::ChannelPoisonException);
        CHECK(Tracked::live == before.live);  // discarded at poison, not when the channel goes
    }
    CHECK(Tracked::live == before.live);
}

TEST_CASE("a retired end used again throws at once", "[conformance][misuse][ends]") {
    csp::Channel<int> channel{"reuse", csp::buffer(4)};
    auto out = channel.writer();
    auto other_out = channel.writer();
    auto in = channel.reader();
    auto other_in = channel.reader();

    out.retire();
    CHECK_THROWS_AS(out(1), std::exception);
    other_out(2);  // the channel itself is still open
    other_out(3);

    in.retire();
    CHECK_THROWS_AS(in(), std::exception);  // values are waiting: a wrong answer shows, no hang
    CHECK(other_in() == 2);
}

TEST_CASE("a moved-from end throws a clear exception and does not count", "[conformance][misuse][ends]") {
    csp::Channel<int> channel{"moved", csp::buffer(4)};
    auto in = channel.reader();
    {
        auto out = channel.writer();
        auto moved_to = std::move(out);
        CHECK_THROWS_AS(out(1), std::exception);  // NOLINT(bugprone-use-after-move): the point of the test
        moved_to(2);
    }  // both gone: the moved-from one must not have left twice nor kept the channel open
    CHECK(in() == 2);
    CHECK_THROWS_AS(in(), csp::ChannelRetireException);

    csp::Channel<int> second{"moved-reader", csp::buffer(4)};
    auto out = second.writer();
    out(3);
    out(4);
    auto reader = second.reader();
    auto moved_reader = std::move(reader);
    CHECK_THROWS_AS(reader(), std::exception);  // NOLINT(bugprone-use-after-move)
    CHECK(moved_reader() == 3);
}

TEST_CASE("a negative or absurd buffer size is rejected", "[conformance][misuse]") {
    CHECK_THROWS_AS(csp::Channel<int>(csp::buffer(-1)), std::exception);
    CHECK_THROWS_AS(csp::Channel<int>(csp::buffer(std::numeric_limits<long long>::max())), std::exception);
    CHECK_THROWS_AS(csp::Channel<int>("absurd", csp::buffer(std::numeric_limits<long long>::max() / 2)),
                    std::exception);
    // The public struct made by hand goes through the same check (it once
    // overflowed the buffer's size and the first write crashed).
    CHECK_THROWS_AS(csp::Channel<int>("by-hand", csp::Buffer{std::size_t{1} << 62}), csp::UsageError);
    CHECK_THROWS_WITH(csp::Channel<int>("by-hand", csp::Buffer{std::size_t{1} << 62}),
                      Catch::Contains("csp::Buffer{4611686018427387904}: capacity must be between 0 and"));
    CHECK_THROWS_AS(csp::Channel<int>(csp::Buffer{~std::size_t{0}}), csp::UsageError);
    csp::Channel<int> largest("largest", csp::Buffer{std::size_t{1} << 10});
    auto out = largest.writer();
    auto in = largest.reader();
    for (int i = 0; i < 1024; ++i) out(i);
    for (int i = 0; i < 1024; ++i) CHECK(in() == i);
}

namespace {
// Jumpy: a value whose move constructor throws on its fail_at-th move (a
// copy keeps the count; 0: never).
struct Jumpy {
    int v = 0;
    int moves = 0;
    int fail_at = 0;
    static inline std::atomic<int> alive{0};
    explicit Jumpy(int x, int fail = 0) : v(x), fail_at(fail) { ++alive; }
    Jumpy(const Jumpy& o) : v(o.v), moves(o.moves), fail_at(o.fail_at) { ++alive; }
    Jumpy(Jumpy&& o) : v(o.v), moves(o.moves + 1), fail_at(o.fail_at) {  // NOLINT: throws, the point
        if (moves == fail_at) throw std::runtime_error("move of " + std::to_string(v));
        ++alive;
    }
    Jumpy& operator=(const Jumpy&) = default;
    Jumpy& operator=(Jumpy&&) = default;
    ~Jumpy() { --alive; }
};
}  // namespace

// Story: a value whose move constructor threw while it was handed over
// called std::terminate (the move ran under the channel's lock). Such a
// value now travels boxed: a move that throws in the writer leaves it with
// the writer and sends nothing; one that throws in the reader loses that
// value (it was already taken); the channel stays usable, and no value is
// leaked or destroyed twice.
TEST_CASE("a value whose move throws gives the writer or reader the exception", "[conformance][values]") {
    static_assert(csp::detail::boxed_v<Jumpy>);
    const int buffer = GENERATE(0, 4);
    CAPTURE(buffer);
    {
        csp::Channel<Jumpy> channel{"jumpy", csp::buffer(buffer)};
        std::vector<int> got;
        std::string writer_saw, reader_saw, guard_saw;
        bool ended_by_retire = false;
        auto writer = csp::process([&](csp::ChannelOut<Jumpy> o) {
            Jumpy one(1, 1);  // its first move (into the box) throws
            try {
                o(std::move(one));
            } catch (const std::runtime_error& e) {
                writer_saw = e.what();
            }
            CHECK(one.v == 1);  // still the writer's
            one.fail_at = 0;
            o(std::move(one));  // and sent now
            o(Jumpy(2, 2));     // its second move (out of the box, in the reader) throws
            o(Jumpy(3));
            // A guard boxes its value when it is made: a throw is the caller's.
            try {
                csp::OutputGuard<Jumpy> guard(o, Jumpy(4, 1));
            } catch (const std::runtime_error& e) {
                guard_saw = e.what();
            }
            (void)csp::PriSelect(csp::OutputGuard(o, Jumpy(5)));
            csp::Alternation alt{csp::OutputGuard(o, Jumpy(6))};
            alt.execute();
            alt.execute();  // the same value again (a copy each time)
        });
        auto reader = csp::process([&](csp::ChannelIn<Jumpy> i) {
            got.push_back(i().v);  // 1
            try {
                (void)i();  // 2: lost in the throwing move out
            } catch (const std::runtime_error& e) {
                reader_saw = e.what();
            }
            got.push_back(i().v);                                       // 3
            got.push_back(std::get<0>(csp::PriSelect(csp::InputGuard(i))).v);  // 5
            for (int k = 0; k < 2; ++k) got.push_back(i().v);          // 6, 6
            try {
                (void)i();  // nothing else was sent
            } catch (const csp::ChannelRetireException&) {
                ended_by_retire = true;
            }
        });
        csp::Parallel(writer(channel.writer()), reader(channel.reader()));
        CHECK(writer_saw == "move of 1");
        CHECK(reader_saw == "move of 2");
        CHECK(guard_saw == "move of 4");
        CHECK(got == std::vector<int>{1, 3, 5, 6, 6});
        CHECK(ended_by_retire);
    }
    CHECK(Jumpy::alive == 0);
}
