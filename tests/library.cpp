// csp::lib (csp/library.hpp): each ready-made process does what API.md says,
// with every value counted, and a network of them shuts down by retire or
// poison from either end, as a hand-written one does.
#include "support.hpp"

#include <csp/library.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// collect: every value until the channel retires.
template <class T>
auto collector() {
    return csp::process("collect", [](csp::ChannelIn<T> in) {
        std::vector<T> got;
        try {
            for (;;) got.push_back(in());
        } catch (const csp::ChannelRetireException&) {
        }
        return got;
    });
}

template <class T>
auto feeder() {
    return csp::process("feed", [](std::vector<T> values, csp::ChannelOut<T> out) {
        for (auto& v : values) out(std::move(v));
    });
}

std::vector<int> iota(int from, int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), from);
    return v;
}

}  // namespace

TEST_CASE("numbers, map, filter and take: a pipeline that ends when take has passed its values", "[library]") {
    csp::Channel<int> a{"numbers"}, b{"squares"}, c{"even"}, d{"taken"};
    auto [n, m, f, t, got] = csp::Parallel(csp::lib::numbers(a.writer(), 1),
                                           csp::lib::map([](int x) { return x * x; }, a.reader(), b.writer()),
                                           csp::lib::filter([](int x) { return x % 2 == 0; }, b.reader(), c.writer()),
                                           csp::lib::take(5, c.reader(), d.writer()), collector<int>()(d.reader()));
    (void)n, (void)m, (void)f, (void)t;
    CHECK(got == std::vector<int>{4, 16, 36, 64, 100});
}

TEST_CASE("map may change the type", "[library]") {
    csp::Channel<int> a{"ints"};
    csp::Channel<std::string> b{"strings"};
    auto [fed, mapped, got] =
        csp::Parallel(feeder<int>()(iota(0, 3), a.writer()),
                      csp::lib::map([](int x) { return std::string(static_cast<std::size_t>(x), 'x'); }, a.reader(),
                                    b.writer()),
                      collector<std::string>()(b.reader()));
    (void)fed, (void)mapped;
    CHECK(got == std::vector<std::string>{"", "x", "xx"});
}

TEST_CASE("commstime from the library: prefix, delta and successor count 0, 1, 2, ...", "[library]") {
    // Welch's commstime: prefix(0) -> delta -> successor -> back to prefix;
    // delta's other output goes to a consumer that takes n values.
    csp::Channel<long> a{"a"}, b{"b"}, c{"c"}, d{"d"};
    constexpr long n = 2000;
    auto consumer = csp::process("consumer", [](csp::ChannelIn<long> in, long n) {
        long good = 0;
        for (long i = 0; i < n; ++i) good += in() == i ? 1 : 0;
        in.poison();  // ends the ring
        return good;
    });
    std::vector<csp::ChannelOut<long>> outs;
    outs.push_back(b.writer());
    outs.push_back(d.writer());
    auto [p, dl, s, good] = csp::Parallel(csp::lib::prefix(0L, c.reader(), a.writer()),
                                          csp::lib::delta(a.reader(), std::move(outs)),
                                          csp::lib::successor(b.reader(), c.writer()), consumer(d.reader(), n));
    (void)p, (void)dl, (void)s;
    CHECK(good == n);
}

TEST_CASE("delta and seq_delta give every value to every output", "[library]") {
    for (bool sequential : {false, true}) {
        CAPTURE(sequential);
        csp::Channel<int> in{"in"}, x{"x"}, y{"y"}, z{"z"};
        std::vector<csp::ChannelOut<int>> outs;
        outs.push_back(x.writer());
        outs.push_back(y.writer());
        outs.push_back(z.writer());
        auto splitter = sequential ? csp::lib::seq_delta(in.reader(), std::move(outs))
                                   : csp::lib::delta(in.reader(), std::move(outs));
        auto [fed, split, gx, gy, gz] =
            csp::Parallel(feeder<int>()(iota(0, 100), in.writer()), std::move(splitter),
                          collector<int>()(x.reader()), collector<int>()(y.reader()), collector<int>()(z.reader()));
        (void)fed, (void)split;
        CHECK(gx == iota(0, 100));
        CHECK(gy == iota(0, 100));
        CHECK(gz == iota(0, 100));
    }
}

// delta's promise: an output that retires is left out, and the others go on
// getting every value; it ends when every output has retired.
TEST_CASE("delta and seq_delta leave out an output that retired and serve the rest", "[library]") {
    for (bool sequential : {false, true}) {
        CAPTURE(sequential);
        csp::Channel<int> in{"in"}, x{"x"}, y{"y"};
        std::vector<csp::ChannelOut<int>> outs;
        outs.push_back(x.writer());
        outs.push_back(y.writer());
        auto splitter = sequential ? csp::lib::seq_delta(in.reader(), std::move(outs))
                                   : csp::lib::delta(in.reader(), std::move(outs));
        auto quitter = csp::process([](csp::ChannelIn<int> in) {
            std::vector<int> got;
            for (int i = 0; i < 3; ++i) got.push_back(in());
            return got;  // its end retires here
        });
        auto [fed, split, gx, gy] =
            csp::Parallel(feeder<int>()(iota(0, 100), in.writer()), std::move(splitter), quitter(x.reader()),
                          collector<int>()(y.reader()));
        (void)fed, (void)split;
        CHECK(gx == iota(0, 3));
        CHECK(gy == iota(0, 100));
    }
}

TEST_CASE("merge reads every input fairly and ends when all have retired", "[library]") {
    constexpr int inputs = 4, per = 250;
    std::vector<csp::Channel<int>> chans;
    for (int i = 0; i < inputs; ++i) chans.emplace_back("merge-" + std::to_string(i));
    std::vector<csp::ChannelIn<int>> ins;
    std::vector<csp::Process<>> feeds;
    for (int i = 0; i < inputs; ++i) {
        ins.push_back(chans[i].reader());
        feeds.push_back(feeder<int>()(iota(i * per, per), chans[i].writer()));
    }
    csp::Channel<int> out{"merged"};
    auto [fed, merged, got] =
        csp::Parallel(std::move(feeds), csp::lib::merge(std::move(ins), out.writer()), collector<int>()(out.reader()));
    (void)fed, (void)merged;
    // Each input's values in its order; all of them once.
    for (int i = 0; i < inputs; ++i) {
        std::vector<int> mine;
        std::copy_if(got.begin(), got.end(), std::back_inserter(mine),
                     [&](int v) { return v / per == i; });
        CHECK(mine == iota(i * per, per));
    }
    std::sort(got.begin(), got.end());
    CHECK(got == iota(0, inputs * per));
}

TEST_CASE("tail drops the first value; identity passes all; black_hole eats all", "[library]") {
    csp::Channel<int> a{"a"}, b{"b"}, c{"c"}, e{"e"};
    auto [f1, tl, id, got, f2, bh] =
        csp::Parallel(feeder<int>()(iota(0, 10), a.writer()), csp::lib::tail(a.reader(), b.writer()),
                      csp::lib::identity(b.reader(), c.writer()), collector<int>()(c.reader()),
                      feeder<int>()(iota(0, 1000), e.writer()), csp::lib::black_hole(e.reader()));
    (void)f1, (void)tl, (void)id, (void)f2, (void)bh;
    CHECK(got == iota(1, 9));
}

TEST_CASE("generate writes its value until its reader goes", "[library]") {
    csp::Channel<std::string> a{"gen"}, b{"gen-taken"};
    auto [g, t, got] = csp::Parallel(csp::lib::generate(std::string("tick"), a.writer()),
                                     csp::lib::take(3, a.reader(), b.writer()), collector<std::string>()(b.reader()));
    (void)g, (void)t;
    CHECK(got == std::vector<std::string>(3, "tick"));
}

TEST_CASE("fixed_delay delays each value at least its delay; regulate passes the latest per period", "[library]") {
    csp::Channel<int> a{"slow-in"}, b{"slow-out"};
    const auto start = std::chrono::steady_clock::now();
    auto [fed, delayed, got] = csp::Parallel(feeder<int>()(iota(0, 3), a.writer()),
                                             csp::lib::fixed_delay(20ms, a.reader(), b.writer()),
                                             collector<int>()(b.reader()));
    (void)fed, (void)delayed;
    CHECK(got == iota(0, 3));
    CHECK(std::chrono::steady_clock::now() - start >= 60ms);

    // 200 values as fast as they come, regulated to one per 50 ms: far
    // fewer come out, in order, and the last one always does.
    csp::Channel<int> c{"fast"}, d{"regulated"};
    auto [fed2, regulated, got2] = csp::Parallel(feeder<int>()(iota(0, 200), c.writer()),
                                                 csp::lib::regulate(50ms, c.reader(), d.writer()),
                                                 collector<int>()(d.reader()));
    (void)fed2, (void)regulated;
    REQUIRE(!got2.empty());
    CHECK(got2.size() < 50);
    CHECK(std::is_sorted(got2.begin(), got2.end()));
    CHECK(got2.back() == 199);
}

TEST_CASE("a network of library processes shuts down by poison from either end", "[library]") {
    for (bool from_source : {true, false}) {
        CAPTURE(from_source);
        csp::Channel<int> a{"a"}, b{"b"}, c{"c"};
        auto source = csp::process("source", [](csp::ChannelOut<int> out, bool poison) {
            for (int i = 0; i < 100; ++i) out(i);
            if (poison) out.poison();
            else for (;;) out(0);
        });
        auto sink = csp::process("sink", [](csp::ChannelIn<int> in, bool poison) {
            int n = 0;
            for (; n < 100; ++n) in();
            if (!poison) {
                in.poison();
                return n;
            }
            try {
                for (;;) in();
            } catch (const csp::ChannelPoisonException&) {
                return n;  // (the poison came through identity and map)
            }
        });
        auto [s, id, mp, n] =
            csp::Parallel(source(a.writer(), from_source), csp::lib::identity(a.reader(), b.writer()),
                          csp::lib::map([](int x) { return x + 1; }, b.reader(), c.writer()),
                          sink(c.reader(), from_source));
        (void)s, (void)id, (void)mp;
        CHECK(n == 100);
    }
}

// csp::pipeline (csp/pipeline.hpp).

namespace {
auto numbers_to(int n) {
    return csp::process("source", [n](csp::ChannelOut<int> out) {
        for (int i = 1; i <= n; ++i) out(i);
    });
}

auto collect = collector<std::string>();  // (a pipeline's last part)
}  // namespace

TEST_CASE("pipeline: a source, a stage run four times, and a sink; the sink's result comes back", "[library][pipeline]") {
    auto summer = csp::process("summer", [](csp::ChannelIn<long> in) {
        long total = 0;
        try {
            for (;;) total += in();
        } catch (const csp::ChannelRetireException&) {
        }
        return total;
    });
    const long sum = csp::pipeline(numbers_to(1000), csp::stage([](int x) { return long{x} * x; }) * 4, summer);
    CHECK(sum == 333833500L);
}

TEST_CASE("pipeline: a stage whose body is noexcept is a stage too", "[library][pipeline]") {
    auto twice = csp::process("twice", [](csp::ChannelIn<int> in, csp::ChannelOut<long> out) noexcept {
        try {
            for (;;) out(2L * in());
        } catch (const csp::ChannelRetireException&) {
            out.retire();
        } catch (...) {
            out.poison();
        }
    });
    auto summer = csp::process("summer", [](csp::ChannelIn<long> in) noexcept {
        long total = 0;
        try {
            for (;;) total += in();
        } catch (...) {
        }
        return total;
    });
    CHECK(csp::pipeline(numbers_to(100), twice, summer) == 10100L);
}

TEST_CASE("pipeline: ordered(stage * n) keeps the input order; factories are stages too", "[library][pipeline]") {
    // Later values take less time, so unordered copies would finish out of order.
    auto slow_double = csp::stage([](int x) {
        csp::sleep(std::chrono::microseconds(200 * (50 - x % 50)));
        return 2 * x;
    });
    auto to_text = csp::process("to_text", [](csp::ChannelIn<int> in, csp::ChannelOut<std::string> out) {
        for (;;) out(std::to_string(in()));
    });
    const std::vector<std::string> got =
        csp::pipeline(numbers_to(200), csp::ordered(slow_double * 4), to_text * 2, collect);
    // to_text runs twice: its two copies may swap neighbours; sort by value to compare the set,
    // and check the order with one copy.
    std::vector<std::string> expected;
    for (int i = 1; i <= 200; ++i) expected.push_back(std::to_string(2 * i));
    std::vector<std::string> sorted_got = got, sorted_expected = expected;
    std::sort(sorted_got.begin(), sorted_got.end());
    std::sort(sorted_expected.begin(), sorted_expected.end());
    CHECK(sorted_got == sorted_expected);
    const std::vector<std::string> in_order = csp::pipeline(numbers_to(200), csp::ordered(slow_double * 4), to_text, collect);
    CHECK(in_order == expected);
}

TEST_CASE("pipeline: ordered(factory * n) keeps the input order too", "[library][pipeline]") {
    // Later values take less time: unordered copies finish out of order.
    auto slow_text = csp::process("slow_text", [](csp::ChannelIn<int> in, csp::ChannelOut<std::string> out) {
        for (;;) {
            const int x = in();
            csp::sleep(std::chrono::microseconds(200 * (50 - x % 50)));
            out(std::to_string(x));
        }
    });
    std::vector<std::string> expected;
    for (int i = 1; i <= 120; ++i) expected.push_back(std::to_string(i));
    CHECK(csp::pipeline(numbers_to(120), csp::ordered(slow_text * 4), collect) == expected);
    CHECK(csp::pipeline(numbers_to(120), csp::ordered(slow_text * 1), collect) == expected);
    // (Unordered, the same copies do finish out of order: the check above can fail.)
    std::vector<std::string> unordered = csp::pipeline(numbers_to(120), slow_text * 4, collect);
    CHECK(unordered != expected);
    std::sort(unordered.begin(), unordered.end());
    std::vector<std::string> sorted = expected;
    std::sort(sorted.begin(), sorted.end());
    CHECK(unordered == sorted);
    CHECK_THROWS_AS(csp::pipeline(numbers_to(3), csp::ordered(slow_text * 0), collect), csp::UsageError);
}

TEST_CASE("pipeline: a stage of no copies is a usage error, whatever kind of stage", "[library][pipeline]") {
    // (Nobody would read what the part before it writes: the pipeline would
    // end at once with an empty result, as if there had been no values.)
    auto twice = csp::stage([](int x) { return 2 * x; });
    auto pass = csp::process("pass", [](csp::ChannelIn<int> in, csp::ChannelOut<std::string> out) {
        for (;;) out(std::to_string(in()));
    });
    auto message_of = [](auto&& run) {
        try {
            run();
        } catch (const csp::UsageError& e) {
            return std::string(e.what());
        }
        return std::string("(no UsageError)");
    };
    const std::string plain = message_of([&] { csp::pipeline(numbers_to(3), twice * 0, pass, collect); });
    CHECK_THAT(plain, Catch::Matchers::Contains("stage 1 has no copies"));
    CHECK_THAT(message_of([&] { csp::pipeline(numbers_to(3), csp::ordered(twice * 0), pass, collect); }),
               Catch::Matchers::Contains("stage 1 has no copies"));
    CHECK_THAT(message_of([&] { csp::pipeline(numbers_to(3), pass * 0, collect); }),
               Catch::Matchers::Contains("stage 1 has no copies"));
    // Later in the pipeline, with the earlier stages' processes made by then.
    CHECK_THAT(message_of([&] { csp::pipeline(numbers_to(3), twice * 2, pass * 0, collect); }),
               Catch::Matchers::Contains("stage 2 has no copies"));
    // One copy of each still runs.
    CHECK(csp::pipeline(numbers_to(3), twice * 1, pass * 1, collect) == std::vector<std::string>{"2", "4", "6"});
}

// An infinite buffer never makes its writer wait, but a fiber writing into
// one in a loop yields now and then (channels/channel.cpp, t_crowded), so a
// reader on the same worker drains it as it goes instead of after the whole
// loop (the buffer would hold every value at once).
TEST_CASE("a fiber writing into an infinite buffer lets a reader on its worker drain it as it goes",
          "[buffer-kinds]") {
    constexpr long n = 200'000;
    csp::Channel<long> ch{"crowded", csp::infinite_buffer()};
    std::atomic<long> written{0};
    long most_behind = 0, sum = 0, got = 0;
    auto writer = csp::process("writer", [&](csp::ChannelOut<long> out) {
        for (long i = 0; i < n; ++i) {
            out(i);
            written.fetch_add(1, std::memory_order_relaxed);
        }
    });
    auto reader = csp::process("reader", [&](csp::ChannelIn<long> in) {
        try {
            for (;;) {
                sum += in();
                ++got;
                most_behind = std::max(most_behind, written.load(std::memory_order_relaxed) - got);
            }
        } catch (const csp::ChannelRetireException&) {
        }
    });
    csp::Parallel(writer(ch.writer()), reader(ch.reader()));
    CHECK(got == n);
    CHECK(sum == n * (n - 1) / 2);
    // On one worker the reader runs only when the writer yields: at most
    // one yield period behind (and a little). Elsewhere it runs beside it.
    const char* threads = std::getenv("CSP_THREADS");
    if (threads && std::string(threads) == "1") CHECK(most_behind <= 2 * 16384);
}
