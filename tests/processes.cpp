// Processes and combinators: csp::process, Parallel, Sequence, Spawn,
// proc * n, results, argument lifetime. Runs with fibers on CSP_THREADS
// workers (registered for 1 and 4).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <variant>

using namespace std::chrono_literals;
using csp_test::Tracked;
using csp_test::TrackedCounts;

TEST_CASE("calling a process factory runs nothing until a combinator runs it", "[process]") {
    std::atomic<int> runs{0};
    auto count = csp::process([&runs] { ++runs; });
    csp::Process<> deferred = count();
    CHECK(runs == 0);
    csp::Parallel(std::move(deferred));
    CHECK(runs == 1);
}

TEST_CASE("Parallel returns the results in argument order", "[process][results]") {
    auto number = csp::process([](int x) { return x * 2; });
    auto text = csp::process([](std::string s) { return s + "!"; });
    auto nothing = csp::process([] {});

    auto results = csp::Parallel(number(21), text(std::string("hi")), nothing(), number(5));
    static_assert(std::is_same_v<decltype(results), std::tuple<int, std::string, std::monostate, int>>);
    CHECK(std::get<0>(results) == 42);
    CHECK(std::get<1>(results) == "hi!");
    CHECK(std::get<3>(results) == 10);
}

TEST_CASE("Parallel over a vector returns a vector of results in order", "[process][results]") {
    auto square = csp::process([](int x) {
        csp::sleep(std::chrono::milliseconds(20 - x));  // finish in reverse order
        return x * x;
    });
    std::vector<csp::Process<int>> processes;
    for (int i = 0; i < 10; ++i) processes.push_back(square(i));
    std::vector<int> results = csp::Parallel(std::move(processes));
    std::vector<int> expected;
    for (int i = 0; i < 10; ++i) expected.push_back(i * i);
    CHECK(results == expected);

    auto nothing = csp::process([] {});
    std::vector<csp::Process<>> voids;
    voids.push_back(nothing());
    voids.push_back(nothing());
    auto void_results = csp::Parallel(std::move(voids));
    static_assert(std::is_same_v<decltype(void_results), std::vector<std::monostate>>);
    CHECK(void_results.size() == 2);
}

TEST_CASE("Process<> holds processes of any result type", "[process][results]") {
    std::atomic<int> ran{0};
    auto number = csp::process([&ran] { ++ran; return 1; });
    auto text = csp::process([&ran] { ++ran; return std::string("x"); });
    auto nothing = csp::process([&ran] { ++ran; });
    std::vector<csp::Process<>> mixed;
    mixed.push_back(number());
    mixed.push_back(text());
    mixed.push_back(nothing());
    csp::Parallel(std::move(mixed));
    CHECK(ran == 3);
}

TEST_CASE("Sequence runs processes one after another, in order", "[process][sequence]") {
    std::mutex mutex;
    std::vector<std::string> events;
    auto step = csp::process([&](int id) {
        { std::lock_guard lock(mutex); events.push_back("start " + std::to_string(id)); }
        csp::sleep(std::chrono::milliseconds(30 - 10 * id));  // a later step would overtake
        { std::lock_guard lock(mutex); events.push_back("end " + std::to_string(id)); }
        return id;
    });
    auto results = csp::Sequence(step(0), step(1), step(2));
    static_assert(std::is_same_v<decltype(results), std::tuple<int, int, int>>);
    CHECK(results == std::tuple{0, 1, 2});
    CHECK(events == std::vector<std::string>{"start 0", "end 0", "start 1", "end 1", "start 2", "end 2"});
}

TEST_CASE("Parallel runs its processes concurrently", "[process]") {
    // Two processes that each need the other to make progress: run one at a
    // time they would deadlock.
    csp::Channel<int> ping{"ping"}, pong{"pong"};
    auto left = csp::process([](csp::ChannelOut<int> out, csp::ChannelIn<int> in) {
        int total = 0;
        for (int i = 0; i < 100; ++i) {
            out(i);
            total += in();
        }
        return total;
    });
    auto right = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (int i = 0; i < 100; ++i) out(in() + 1);
    });
    auto [total, unused] = csp::Parallel(left(ping.writer(), pong.reader()), right(ping.reader(), pong.writer()));
    (void)unused;
    CHECK(total == 100 * 99 / 2 + 100);
}

TEST_CASE("Spawn returns at once; the spawned process is joined when its spawner ends", "[process][spawn]") {
    csp::Channel<int> channel{"spawned"};
    std::atomic<int> got{0};
    std::atomic<bool> late_finished{false};
    std::atomic<bool> spawner_saw_late_finished{true};
    auto reader = csp::process([&got](csp::ChannelIn<int> in) { got = in(); });
    auto late = csp::process([&late_finished] {
        csp::sleep(80ms);
        late_finished = true;
    });
    auto spawner = csp::process([&] {
        csp::Spawn(reader(channel.reader()), late());
        channel.writer()(42);  // would deadlock had Spawn waited for the reader
        spawner_saw_late_finished = late_finished.load();
    });
    csp::Parallel(spawner());
    CHECK(got == 42);
    CHECK_FALSE(spawner_saw_late_finished);  // the spawner's body did not wait...
    CHECK(late_finished);                    // ...but Parallel did not end before the spawned one
}

TEST_CASE("Spawn from main runs a process beside main", "[process][spawn]") {
    csp::Channel<int> request{"request"}, reply{"reply"};
    auto doubler = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in() * 2); });
    csp::Spawn(doubler(request.reader(), reply.writer()));
    auto out = request.writer();
    auto in = reply.reader();
    out(21);
    CHECK(in() == 42);
}

TEST_CASE("proc * n makes n copies, each holding its own ends", "[process][replicate]") {
    // If the copies shared one writer end, the first copy to end would retire
    // the channel and the others would lose their writes.
    csp::Channel<int> channel{"replicated"};
    auto writer = csp::process([](csp::ChannelOut<int> out, int count) {
        for (int i = 0; i < count; ++i) out(1);
    });
    int received = 0;
    auto reader = csp::process([&received](csp::ChannelIn<int> in) {
        for (;;) received += in();
    });

    const bool on_the_left = GENERATE(false, true);
    CAPTURE(on_the_left);
    // The prototype process is a temporary: only the copies hold writer ends.
    std::vector<csp::Process<>> processes = on_the_left ? 4 * writer(channel.writer(), 25)
                                                        : writer(channel.writer(), 25) * 4;
    CHECK(processes.size() == 4);
    processes.push_back(reader(channel.reader()));
    csp::Parallel(std::move(processes));
    CHECK(received == 100);
}

TEST_CASE("proc * n of a process with a result gives a vector of results", "[process][replicate]") {
    auto seven = csp::process([] { return 7; });
    std::vector<int> results = csp::Parallel(seven() * 3);
    CHECK(results == std::vector<int>{7, 7, 7});
}

// Story (from porting PyCSP programs): Parallel(producer, workers * 4,
// consumer), a vector among single processes, did not compile. Each vector
// gives a vector of results at its position; the same for Sequence and
// Spawn.
TEST_CASE("Parallel, Sequence and Spawn take vectors of processes among single ones", "[process][results]") {
    csp::Channel<int> jobs{"mixed-jobs"}, done{"mixed-done"};
    auto producer = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 100; ++i) out(i);
        return std::string("produced");
    });
    auto worker = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        int served = 0;
        try {
            for (;;) {
                out(in() * 2);
                ++served;
            }
        } catch (const csp::ChannelRetireException&) {  // the producer has gone
        }
        return served;  // (its ends leave when the body returns)
    });
    auto consumer = csp::process([](csp::ChannelIn<int> in) {
        long sum = 0;
        try {
            for (;;) sum += in();
        } catch (const csp::ChannelRetireException&) {  // every worker has gone
        }
        return sum;
    });
    auto [what, served, sum] =
        csp::Parallel(producer(jobs.writer()), worker(jobs.reader(), done.writer()) * 4, consumer(done.reader()));
    static_assert(std::is_same_v<decltype(served), std::vector<int>>);
    CHECK(what == "produced");
    REQUIRE(served.size() == 4);
    CHECK(served[0] + served[1] + served[2] + served[3] == 100);
    CHECK(sum == 2L * 100 * 101 / 2);

    // Sequence: each part in order, a vector's processes one by one.
    std::vector<int> order;
    auto step = csp::process([&order](int id) {
        order.push_back(id);
        return id;
    });
    std::vector<csp::Process<int>> middle{step(1), step(2), step(3)};
    auto [first, steps, last] = csp::Sequence(step(0), std::move(middle), step(4));
    CHECK(first == 0);
    CHECK(steps == std::vector<int>{1, 2, 3});
    CHECK(last == 4);
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});

    // Spawn: all of them start; the spawner's end joins them.
    std::atomic<int> ran{0};
    auto count = csp::process([&ran] { ++ran; });
    csp::Parallel(csp::process([&] { csp::Spawn(count(), count() * 3, count()); })());
    CHECK(ran == 5);

    // An empty vector among them is fine.
    auto [none, one] = csp::Parallel(std::vector<csp::Process<int>>{}, step(9));
    CHECK(none.empty());
    CHECK(one == 9);
}

// Found porting Go's tests: a body that keeps state in a by-value capture
// (a mutable lambda) was rejected. Each process runs its own copy.
TEST_CASE("a mutable lambda is a process body with state of its own", "[process]") {
    auto counter = csp::process([calls = 0](int n) mutable {
        for (int i = 0; i < n; ++i) ++calls;
        return calls;
    });
    auto [a, b] = csp::Parallel(counter(3), counter(5));
    CHECK(a == 3);
    CHECK(b == 5);
    CHECK(csp::Parallel(counter(2) * 2) == std::vector<int>{2, 2});
}

// API.md: csp::yield() lets the other ready processes run first; on one
// worker nothing else runs until a process blocks or yields. sleep(0)
// yields too. A process that only computes and yields lets another one
// (which sleeps, so it needs its timer fired) make progress.
TEST_CASE("yield and sleep(0) let the other processes run", "[process][yield]") {
    const bool with_sleep0 = GENERATE(false, true);
    CAPTURE(with_sleep0);
    std::atomic<bool> stop{false};
    std::atomic<int> ticks{0};
    auto spinner = csp::process([&] {
        long spins = 0;
        while (!stop.load()) {
            ++spins;
            if (with_sleep0) csp::sleep(0ms);
            else csp::yield();
        }
        return spins;
    });
    auto sleeper = csp::process([&] {
        for (int i = 0; i < 10; ++i) {
            csp::sleep(1ms);
            ++ticks;
        }
        stop = true;
    });
    auto [spins, unused] = csp::Parallel(spinner(), sleeper());
    (void)unused;
    CHECK(ticks == 10);
    CHECK(spins > 0);
    // From main (a plain thread) it yields the thread.
    csp::yield();
    csp::sleep(0ms);
}

// Two processes that only yield alternate: each yield lets the other run.
TEST_CASE("two yielding processes on one worker take turns", "[process][yield]") {
    std::vector<int> turns;
    std::mutex mutex;
    auto taker = csp::process([&](int id) {
        for (int i = 0; i < 5; ++i) {
            {
                std::lock_guard lock(mutex);
                turns.push_back(id);
            }
            csp::yield();
        }
    });
    csp::Parallel(taker(0), taker(1));
    CHECK(turns.size() == 10);
    if (const char* n = std::getenv("CSP_THREADS"); n && std::string(n) == "1") {
        // Strict alternation on one worker: neither runs twice in a row.
        for (std::size_t i = 1; i < turns.size(); ++i) CHECK(turns[i] != turns[i - 1]);
    }
}

// Story: the farm sample on one worker per rank. A worker process that
// computed a row, wrote it and read the next job from buffered channels
// never waited, so it kept its worker for as long as the buffers allowed:
// the process refilling the jobs, and the collector, waited for it. A
// process that has written without waiting for longer than a slice
// (runtime::kSlice, 4-8 ms) now gives way at its next such write (or
// choice) when another process of its worker can run.
TEST_CASE("a process that computes between communications that never wait gives way to the others of its worker",
          "[process][yield][fairness]") {
    constexpr int kValues = 40;
    csp::Channel<int> computed{"computed", csp::buffer(kValues)};
    std::atomic<int> written{0};
    int written_at_first_read = -1;
    auto busy = csp::process("computes", [&](csp::ChannelOut<int> out) {
        for (int i = 0; i < kValues; ++i) {
            const auto until = std::chrono::steady_clock::now() + 2ms;  // a row's work
            while (std::chrono::steady_clock::now() < until) {
            }
            if (i % 2) {
                out(i);  // (never waits: the buffer has room for all)
            } else {
                (void)csp::PriSelect(csp::OutputGuard(out, i));  // (a choice that never waits either)
            }
            written.store(i + 1, std::memory_order_relaxed);
        }
    });
    auto reader = csp::process("reads", [&](csp::ChannelIn<int> in) {
        int sum = 0;
        for (int i = 0; i < kValues; ++i) {
            sum += in();
            if (i == 0) written_at_first_read = written.load(std::memory_order_relaxed);
        }
        return sum;
    });
    auto [nothing, sum] = csp::Parallel(busy(computed.writer()), reader(computed.reader()));
    (void)nothing;
    CHECK(sum == kValues * (kValues - 1) / 2);
    CAPTURE(written_at_first_read);
    CHECK(written_at_first_read < kValues);  // the reader ran while the writer was still at work
}

// Story: a process's arguments used to live until its Parallel returned, so a
// writer that had ended still held its end and the reader never saw retire.
TEST_CASE("a process's arguments are destroyed when its body ends", "[process][arguments]") {
    csp::Channel<int> channel{"argument-lifetime"};
    auto token = std::make_shared<int>(1);
    const std::weak_ptr<int> watch = token;
    int values_read = 0;
    bool argument_alive_after_neighbour_slept = true;

    auto quick = csp::process([](std::shared_ptr<int>, csp::ChannelOut<int> out) { out(1); });
    auto slow = csp::process([&](csp::ChannelIn<int> in) {
        try {
            for (;;) {
                in();
                ++values_read;
            }
        } catch (const csp::ChannelRetireException&) {
        }
        csp::sleep(100ms);
        argument_alive_after_neighbour_slept = !watch.expired();
    });
    auto quick_process = quick(std::move(token), channel.writer());
    token.reset();  // whether the factory copied or moved, only the process holds it now
    csp::Parallel(std::move(quick_process), slow(channel.reader()));
    CHECK(values_read == 1);  // and the reader saw retire: the writer end was destroyed
    CHECK_FALSE(argument_alive_after_neighbour_slept);
    CHECK(watch.expired());
}

namespace {
// Bomb: an argument whose move throws once armed. An armed Bomb that still
// holds its token takes 50 ms to go: let go of after the process arrived at
// its join, it would still hold the token when Parallel returns.
struct Bomb {
    std::shared_ptr<int> held;
    static inline std::atomic<bool> armed{false};
    explicit Bomb(std::shared_ptr<int> t) : held(std::move(t)) {}
    Bomb(const Bomb&) = default;
    Bomb(Bomb&& other) : held(other.held) {
        if (armed) throw std::runtime_error("moving a Bomb");
        other.held.reset();
    }
    ~Bomb() {
        if (armed && held) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
};
}  // namespace

// A process's call is also what the runtime runs (one record per process):
// it must let go of the arguments however the process is held or ends.
TEST_CASE("arguments are gone before Parallel returns: a Process<> of a result, a failing body", "[process][arguments]") {
    auto token = std::make_shared<int>(1);
    const std::weak_ptr<int> watch = token;
    SECTION("a process with a result, held as a Process<>") {
        auto answer = csp::process([](std::shared_ptr<int> t) { return *t + 41; });
        std::vector<csp::Process<>> procs;
        procs.push_back(answer(std::move(token)));
        token.reset();
        csp::Parallel(std::move(procs));
        CHECK(watch.expired());
    }
    SECTION("an argument whose move throws as the process starts") {
        auto never = csp::process([](Bomb) { FAIL("the body ran"); });
        auto proc = never(Bomb(std::move(token)));
        token.reset();
        Bomb::armed = true;
        CHECK_THROWS_AS(csp::Parallel(std::move(proc)), csp::ProcessError);
        Bomb::armed = false;
        CHECK(watch.expired());
    }
    SECTION("a body that throws") {
        auto fails = csp::process([](std::shared_ptr<int>) { throw std::runtime_error("no"); });
        auto proc = fails(std::move(token));
        token.reset();
        CHECK_THROWS_AS(csp::Parallel(std::move(proc)), csp::ProcessError);
        CHECK(watch.expired());
    }
}

namespace {
// Wide: an over-aligned argument that counts every copy or move made from
// or into a misaligned place (the process's stored call included).
struct alignas(64) Wide {
    static inline std::atomic<int> misaligned{0};
    std::int64_t value[4];
    explicit Wide(std::int64_t first) : value{first, 2, 3, 4} { note(this); }
    Wide(const Wide& o) : value{o.value[0], o.value[1], o.value[2], o.value[3]} { note(this), note(&o); }
    static void note(const void* p) {
        if (reinterpret_cast<std::uintptr_t>(p) % alignof(Wide) != 0) ++misaligned;
    }
};
}  // namespace

TEST_CASE("an over-aligned argument is kept aligned and intact", "[process][arguments]") {
    auto check = csp::process([](const Wide& w) {
        Wide::note(&w);
        return w.value[0] + w.value[3];
    });
    std::vector<csp::Process<std::int64_t>> procs;
    for (int i = 0; i < 100; ++i) procs.push_back(check(Wide(i)));
    auto copies = procs;  // (copies make their calls afresh)
    std::vector<std::int64_t> results = csp::Parallel(std::move(procs));
    for (int i = 0; i < 100; ++i) CHECK(results[static_cast<std::size_t>(i)] == i + 4);
    results = csp::Parallel(std::move(copies));
    for (int i = 0; i < 100; ++i) CHECK(results[static_cast<std::size_t>(i)] == i + 4);
    CHECK(Wide::misaligned.load() == 0);
}

TEST_CASE("arguments are moved into a process: move-only arguments work", "[process][arguments]") {
    auto take = csp::process([](std::unique_ptr<int> p) { return *p + 1; });
    auto [result] = csp::Parallel(take(std::make_unique<int>(41)));
    CHECK(result == 42);
}

TEST_CASE("values move through a channel between processes without a copy", "[process][values]") {
    const TrackedCounts before;
    {
        csp::Channel<Tracked> channel{"tracked"};
        auto producer = csp::process([](csp::ChannelOut<Tracked> out) {
            for (int i = 0; i < 50; ++i) out(Tracked(i));
        });
        auto consumer = csp::process([](csp::ChannelIn<Tracked> in) {
            int sum = 0;
            for (int i = 0; i < 50; ++i) sum += in().value;
            return sum;
        });
        auto [unused, sum] = csp::Parallel(producer(channel.writer()), consumer(channel.reader()));
        (void)unused;
        CHECK(sum == 50 * 49 / 2);
    }
    CHECK(Tracked::live == before.live);
    CHECK(Tracked::copies == before.copies);
}

TEST_CASE("a process ending with poison or retire has ended normally", "[process][termination]") {
    csp::Channel<int> poisoned{"already-poisoned"};
    poisoned.poison();
    csp::Channel<int> retired{"already-retired"};
    { auto gone = retired.writer(); }
    auto read_one = csp::process([](csp::ChannelIn<int> in) { in(); });
    CHECK_NOTHROW(csp::Parallel(read_one(poisoned.reader()), read_one(retired.reader())));
}

TEST_CASE("processes nest: Parallel inside a process", "[process]") {
    auto leaf = csp::process([](int x) { return x + 1; });
    auto branch = csp::process([&leaf](int x) {
        auto [a, b] = csp::Parallel(leaf(x), leaf(x * 10));
        return a + b;
    });
    auto [left, right] = csp::Parallel(branch(1), branch(2));
    CHECK(left == 2 + 11);
    CHECK(right == 3 + 21);
}

TEST_CASE("Parallel works from several plain threads at once", "[process][threads]") {
    auto producer = csp::process([](csp::ChannelOut<int> out) {
        for (int i = 0; i < 1000; ++i) out(i);
    });
    std::vector<long> counted(3, -1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&, t] {
            csp::Channel<int> channel;
            long sum = 0;
            auto counting = csp::process([&sum](csp::ChannelIn<int> in) {
                for (;;) sum += in();
            });
            csp::Parallel(producer(channel.writer()), counting(channel.reader()));
            counted[t] = sum;
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(counted == std::vector<long>(3, 999L * 1000 / 2));
}

TEST_CASE("one hundred thousand processes in one Parallel, each communicating", "[process][scale]") {
    // Smaller under sanitizers (kScale): TSan keeps about 0.5 MB of its own
    // state per fiber, and checks the races at a smaller scale.
    constexpr int count = csp_test::scaled(100'000);
    csp::Channel<int> channel{"many"};
    auto sender = csp::process([](csp::ChannelOut<int> out, int i) { out(i); });
    std::vector<char> seen(count, 0);
    int received = 0;
    auto collector = csp::process([&](csp::ChannelIn<int> in) {
        for (;;) {
            const int i = in();
            if (i >= 0 && i < count) ++seen[i];
            ++received;
        }
    });
    std::vector<csp::Process<>> processes;
    processes.reserve(count + 1);
    for (int i = 0; i < count; ++i) processes.push_back(sender(channel.writer(), i));
    processes.push_back(collector(channel.reader()));
    csp::Parallel(std::move(processes));
    CHECK(received == count);
    CHECK(std::all_of(seen.begin(), seen.end(), [](char c) { return c == 1; }));
}
