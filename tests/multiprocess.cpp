// The multiprocess suite: what is particular to csp::multiprocess and the
// OS-process boundary. The channel conformance matrix across the boundary
// (every topology, buffer size and termination, with bodies in children or
// fibers and children by turns) is conformance.cpp's, registered with
// CSP_TEST_PLACEMENT=os_processes and mixed; here: main talking to a child,
// channels a child makes from captured handles, the unwinding rule, results,
// values of every kind serialized through channels, alternation, children
// that crash, fork churn, nesting, and local channels of types that cannot
// cross. tests/meson.build registers it for CSP_THREADS=1 and 4 (a child
// starts a runtime of its own with the same worker count).
//
// Rules on top of support.hpp's:
//   - A multiprocess body runs in a forked copy of this program. It never
//     captures by reference and never records into this process's memory:
//     what it saw comes back as its return value or over a channel. Only
//     fibers of this process and main record into variables.
//   - Some bodies are written once as plain lambdas returning what they saw,
//     and on() places each in a fiber or in a child, so one scenario runs in
//     every mix of placements.
//   - After a network with children has ended, every child must have been
//     reaped: no zombie, none still running (unreaped_children()).
//
// Compile-time rule, not testable here: handing a csp::multiprocess a channel
// end whose value type cannot cross OS processes (say ChannelOut<Tracked>:
// not trivially copyable, no serialize function) is a static_assert in the
// multiprocess factory, and so is a body whose result cannot cross. Catch2
// cannot test that a program does not compile; "a channel of a type that
// cannot cross ..." below checks the other half: such a channel used only
// inside this process still compiles and works beside multiprocesses.
#include "alternation_helpers.hpp"
#include "runtime/arena.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

using namespace std::chrono_literals;
using Catch::Contains;
using csp_test::Clock;
using csp_test::Ending;
using csp_test::make_value;
using csp_test::Seen;
using csp_test::Tracked;
using csp_test::TrackedCounts;
using csp_test::unreaped_children;

namespace {

// ---------------------------------------------------------------------------
// Placement

enum class Side { fiber, child };

const char* name_of(Side side) { return side == Side::child ? "child OS process" : "fiber"; }

// on(side, name, f, args...): the process f(args...), run as a fiber of this
// OS process or in a forked child. Both give the same Process<R>.
template <class F, class... Args>
auto on(Side side, const char* name, F f, Args&&... args) {
    auto as_fiber = csp::process(name, f);
    using P = decltype(as_fiber(std::forward<Args>(args)...));
    if (side == Side::child) return P(csp::multiprocess(name, f)(std::forward<Args>(args)...));
    return as_fiber(std::forward<Args>(args)...);
}

// ---------------------------------------------------------------------------
// Bodies of the partners of a child that fails. They catch retire and poison
// themselves and return how they ended and how many of their operations
// completed first.

// keep_reading: read until the channel ends this.
const auto keep_reading = [](csp::ChannelIn<int> in) {
    Seen o;
    try {
        for (;;) {
            in();
            ++o.count;
        }
    } catch (const csp::ChannelRetireException&) {
        o.ending = Ending::retired;
    } catch (const csp::ChannelPoisonException&) {
        o.ending = Ending::poisoned;
    }
    return o;
};

// keep_writing: write 0, 1, 2, ... until the channel ends this.
const auto keep_writing = [](csp::ChannelOut<int> out) {
    Seen o;
    try {
        for (;;) {
            out(o.count);
            ++o.count;
        }
    } catch (const csp::ChannelRetireException&) {
        o.ending = Ending::retired;
    } catch (const csp::ChannelPoisonException&) {
        o.ending = Ending::poisoned;
    }
    return o;
};

// read_until_retired: every value read, in order, until the writers left.
template <class T>
std::vector<T> read_until_retired(csp::ChannelIn<T>& in) {
    std::vector<T> got;
    try {
        for (;;) got.push_back(in());
    } catch (const csp::ChannelRetireException&) {
    }
    return got;
}

// ---------------------------------------------------------------------------
// Types that cross OS processes.

// Trivially copyable: crosses by memcpy.
struct Plain {
    int id;
    double x;
    char code[8];
    bool operator==(const Plain&) const = default;
};

// A user type with a cereal serialize member.
struct Job {
    std::string name;
    std::vector<int> data;
    std::map<std::string, int> weights;
    std::optional<double> deadline;
    template <class Archive>
    void serialize(Archive& archive) {
        archive(name, data, weights, deadline);
    }
    bool operator==(const Job&) const = default;
};

// A user type with a free serialize function (found by argument-dependent lookup).
struct Tagged {
    std::string tag;
    std::vector<std::string> items;
    bool operator==(const Tagged&) const = default;
};
template <class Archive>
void serialize(Archive& archive, Tagged& t) {
    archive(t.tag, t.items);
}

Job sample_job() {
    return Job{"resize", {1, 2, 3, 5, 8, 13}, {{"cpu", 4}, {"memory", 512}}, 2.5};
}

// A user exception type, to see its name come back from a child.
struct CustomError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The bytes of the 100 MB value: a cheap pattern that differs at every
// position, so a lost, repeated or shifted block changes the checksum.
char pattern_byte(std::size_t i) {
    return static_cast<char>((i * 2654435761u) >> 13);
}

std::vector<char> big_value(std::size_t size) {
    std::vector<char> v(size);
    for (std::size_t i = 0; i < size; ++i) v[i] = pattern_byte(i);
    return v;
}

// FNV-1a over the bytes, mixed with the size.
std::uint64_t checksum(const std::vector<char>& v) {
    std::uint64_t h = 14695981039346656037ull ^ v.size();
    for (char c : v) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    return h;
}

constexpr std::size_t big_size = 100u << 20;

}  // namespace

// ===========================================================================
// Channels across the boundary

// main (a plain thread, outside every process) talking to a child, each way:
// every value arrives exactly once and in order, then the reader sees retire
// when the writer's end leaves. (Fibers and children on one channel, in every
// topology, are conformance.cpp's matrix in the os_processes and mixed
// placements.)
TEMPLATE_TEST_CASE("main talks to a child across OS processes: every value once and in order",
                   "[multiprocess][conformance]", int, std::string) {
    using T = TestType;
    const int buffer = GENERATE(0, 1, 16);
    const bool main_reads = GENERATE(true, false);
    CAPTURE(buffer, main_reads);
    constexpr int count = 300;

    const auto write_all = [](csp::ChannelOut<T> out, int n) {
        for (int i = 0; i < n; ++i) out(make_value<T>(i));
    };
    const auto read_all = [](csp::ChannelIn<T> in) { return read_until_retired(in); };

    auto channel = csp_test::make_channel<T>(buffer, "main-and-child");
    std::vector<T> got;
    std::exception_ptr failure;
    if (main_reads) {
        // The Parallel runs on a helper thread; main is the reader.
        auto in = channel.reader();
        std::thread runner([&, out = channel.writer()]() mutable {
            try {
                csp::Parallel(csp::multiprocess("writer", write_all)(std::move(out), count));
            } catch (...) {
                failure = std::current_exception();
            }
        });
        got = read_until_retired(in);
        runner.join();
    } else {
        auto out = channel.writer();
        std::thread runner([&, in = channel.reader()]() mutable {
            try {
                got = std::get<0>(csp::Parallel(csp::multiprocess("reader", read_all)(std::move(in))));
            } catch (...) {
                failure = std::current_exception();
            }
        });
        for (int i = 0; i < count; ++i) out(make_value<T>(i));
        out.retire();
        runner.join();
    }

    CHECK(csp_test::message_of(failure) == "");
    std::vector<T> expected;
    for (int i = 0; i < count; ++i) expected.push_back(make_value<T>(i));
    CHECK(got.size() == expected.size());
    const bool same = got == expected;
    CHECK(same);
    CHECK(unreaped_children() == "");
}

// A channel captured by value in the body, and a Channel handle passed as an
// argument: the child makes its ends from them and they work both ways.
TEST_CASE("channels captured by value or passed as handles work from the child", "[multiprocess][conformance]") {
    csp::Channel<std::string> text{"captured", csp::buffer(4)};
    csp::Channel<int> numbers{"handle-argument"};
    auto text_in = text.reader();  // before the child leaves, so the value waits for it

    auto child = csp::multiprocess("captures", [text](csp::Channel<int> handle) {
        auto out = text.writer();
        out(std::string("captured by value"));
        auto in = handle.reader();
        int sum = 0;
        try {
            for (;;) sum += in();
        } catch (const csp::ChannelRetireException&) {
        }
        return sum;
    });
    auto feeder = csp::process("feeder", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 10; ++i) out(i);
    });
    auto [sum, nothing] = csp::Parallel(child(numbers), feeder(numbers.writer()));
    (void)nothing;

    CHECK(sum == 55);
    CHECK(text_in() == "captured by value");
    CHECK(csp_test::ending_of([&] { text_in(); }) == Ending::retired);
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// The unwinding rule across the boundary

// A child that fails with an ordinary exception poisons every end it holds,
// so its partners here wake with poison instead of waiting for ever, and
// Parallel throws ProcessError holding a RemoteError with the exception's
// type and message.
TEST_CASE("a child that throws poisons its ends and Parallel throws a RemoteError", "[multiprocess][unwinding]") {
    enum Kind { runtime_error, out_of_range, custom, not_a_std_exception };
    const int kind = GENERATE(runtime_error, out_of_range, custom, not_a_std_exception);
    const int buffer = GENERATE(0, 16);
    CAPTURE(kind, buffer);

    auto to_parent = csp_test::make_channel<int>(buffer, "from-thrower");
    auto to_child = csp_test::make_channel<int>(buffer, "to-thrower");
    auto thrower = csp::multiprocess("thrower", [](csp::ChannelOut<int>, csp::ChannelIn<int>, int kind) {
        csp::sleep(100ms);  // let the partners block on both channels
        switch (kind) {
            case runtime_error: throw std::runtime_error("child failed on purpose");
            case out_of_range: throw std::out_of_range("index 7 is out of range");
            case custom: throw CustomError("a custom failure");
            default: throw 42;
        }
    });
    Seen reader, writer;
    auto partner_reader = csp::process("partner-reader", [&](csp::ChannelIn<int> in) { reader = keep_reading(in); });
    auto partner_writer = csp::process("partner-writer", [&](csp::ChannelOut<int> out) { writer = keep_writing(out); });

    std::string process_name, type_name, message;
    int caught = 0;
    try {
        csp::Parallel(thrower(to_parent.writer(), to_child.reader(), kind), partner_reader(to_parent.reader()),
                      partner_writer(to_child.writer()));
    } catch (const csp::ProcessError& error) {
        ++caught;
        process_name = error.process_name();
        try {
            error.rethrow_original();
        } catch (const csp::RemoteError& remote) {
            type_name = remote.type_name();
            message = remote.what();
        } catch (...) {
            type_name = "(the original is not a csp::RemoteError)";
        }
    }

    CHECK(caught == 1);
    CHECK(process_name == "thrower");
    CHECK(reader.ending == Ending::poisoned);
    CHECK(reader.count == 0);
    CHECK(writer.ending == Ending::poisoned);
    CHECK(writer.count == buffer);
    switch (kind) {
        case runtime_error:
            CHECK(type_name == "std::runtime_error");
            CHECK(message == "child failed on purpose");
            break;
        case out_of_range:
            CHECK(type_name == "std::out_of_range");
            CHECK(message == "index 7 is out of range");
            break;
        case custom:
            CHECK_THAT(type_name, Contains("CustomError"));
            CHECK(message == "a custom failure");
            break;
        default:
            CHECK(type_name == "int");
            break;
    }
    CHECK(unreaped_children() == "");
}

// SPEC: ProcessError::what() of a failed child contains both the type name
// and the message of the original exception.
TEST_CASE("ProcessError::what() of a child's exception names its type and its message", "[multiprocess][unwinding]") {
    auto thrower = csp::multiprocess("typed-thrower", [] { throw std::out_of_range("index 9 is out of range"); });
    std::string what;
    try {
        csp::Parallel(thrower());
    } catch (const csp::ProcessError& error) {
        what = error.what();
    }
    CHECK_THAT(what, Contains("std::out_of_range"));
    CHECK_THAT(what, Contains("index 9 is out of range"));
    CHECK_THAT(what, Contains("typed-thrower"));
    CHECK(unreaped_children() == "");
}

// A child that ends with retire or poison has ended normally, and as it
// unwinds its other ends pass the same on: a relay between two channels
// hands retire on as retire and poison as poison, after the values before it.
TEST_CASE("retire and poison pass on through a child's ends as it unwinds", "[multiprocess][unwinding]") {
    const bool poison = GENERATE(false, true);
    CAPTURE(poison);
    csp::Channel<int> in_channel{"to-relay"}, out_channel{"from-relay"};

    auto relay = csp::multiprocess("relay", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        for (;;) out(in() * 10);
    });
    auto feeder = csp::process("feeder", [](csp::ChannelOut<int> out, bool poison) {
        for (int i = 0; i < 5; ++i) out(i);
        // Unbuffered: the relay has taken 4 when the write returns.
        if (poison)
            out.poison();
        else
            out.retire();
    });
    std::vector<int> got;
    Ending ending = Ending::running;
    auto sink = csp::process("sink", [&](csp::ChannelIn<int> in) {
        ending = csp_test::ending_of([&] {
            for (;;) got.push_back(in());
        });
    });
    csp::Parallel(relay(in_channel.reader(), out_channel.writer()), feeder(in_channel.writer(), poison),
                  sink(out_channel.reader()));

    CHECK(got == std::vector<int>{0, 10, 20, 30, 40});
    CHECK(ending == (poison ? Ending::poisoned : Ending::retired));
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Results

TEST_CASE("Parallel returns each child's result of every kind that can cross", "[multiprocess][results]") {
    auto make_int = csp::multiprocess([] { return 6 * 7; });
    auto make_string = csp::multiprocess([] { return std::string("from a child\0with a zero", 24); });
    auto make_vector = csp::multiprocess([](int n) {
        std::vector<int> v(static_cast<std::size_t>(n));
        std::iota(v.begin(), v.end(), 1);
        return v;
    });
    auto make_map = csp::multiprocess([] { return std::map<std::string, int>{{"one", 1}, {"two", 2}, {"", 0}}; });
    auto make_tuple = csp::multiprocess([] { return std::tuple<int, std::string, double>(1, "two", 3.5); });
    auto make_optional = csp::multiprocess(
        [](bool engaged) { return engaged ? std::optional<std::string>("here") : std::optional<std::string>(); });
    auto make_variant = csp::multiprocess([](int which) {
        using V = std::variant<int, std::string, std::vector<int>>;
        return which == 1 ? V(std::string("text")) : which == 2 ? V(std::vector<int>{4, 5}) : V(9);
    });
    auto make_job = csp::multiprocess([] { return sample_job(); });
    auto make_plain = csp::multiprocess([] { return Plain{7, 0.25, "abcdefg"}; });
    auto my_pid = csp::multiprocess([] { return static_cast<int>(getpid()); });
    auto nothing = csp::multiprocess([] {});

    auto results = csp::Parallel(make_int(), make_string(), make_vector(1000), make_map(), make_tuple(),
                                 make_optional(true), make_optional(false), make_variant(1), make_variant(2),
                                 make_job(), make_plain(), my_pid(), nothing());
    static_assert(std::is_same_v<std::tuple_element_t<12, decltype(results)>, std::monostate>);

    std::vector<int> one_to_1000(1000);
    std::iota(one_to_1000.begin(), one_to_1000.end(), 1);
    CHECK(std::get<0>(results) == 42);
    CHECK(std::get<1>(results) == std::string("from a child\0with a zero", 24));
    CHECK(std::get<2>(results) == one_to_1000);
    CHECK(std::get<3>(results) == std::map<std::string, int>{{"one", 1}, {"two", 2}, {"", 0}});
    CHECK((std::get<4>(results) == std::tuple<int, std::string, double>(1, "two", 3.5)));
    CHECK(std::get<5>(results) == std::optional<std::string>("here"));
    CHECK_FALSE(std::get<6>(results).has_value());
    CHECK(std::get<7>(results).index() == 1);
    CHECK((std::get<7>(results) == std::variant<int, std::string, std::vector<int>>(std::string("text"))));
    CHECK((std::get<8>(results) == std::variant<int, std::string, std::vector<int>>(std::vector<int>{4, 5})));
    CHECK(std::get<9>(results) == sample_job());
    CHECK(std::get<10>(results) == Plain{7, 0.25, "abcdefg"});
    CHECK(std::get<11>(results) != getpid());  // it ran in an OS process of its own
    CHECK(std::get<11>(results) > 0);
    CHECK(unreaped_children() == "");
}

// Sequence runs children one after another (their steady clock, which is
// the system's monotonic clock, shows no overlap) and returns their results
// in order; the vector forms of Parallel and Sequence too.
TEST_CASE("Sequence and the vector forms run multiprocesses and return results in order", "[multiprocess][results]") {
    auto timed = csp::multiprocess("timed", [](int id) {
        const auto start = Clock::now().time_since_epoch().count();
        csp::sleep(20ms);
        return std::tuple<int, long long, long long>(id, start, Clock::now().time_since_epoch().count());
    });
    auto [a, b, c] = csp::Sequence(timed(0), timed(1), timed(2));
    CHECK(std::get<0>(a) == 0);
    CHECK(std::get<0>(b) == 1);
    CHECK(std::get<0>(c) == 2);
    CHECK(std::get<2>(a) <= std::get<1>(b));
    CHECK(std::get<2>(b) <= std::get<1>(c));

    std::vector<csp::Process<std::tuple<int, long long, long long>>> sequence;
    for (int i = 0; i < 3; ++i) sequence.push_back(timed(i));
    auto in_sequence = csp::Sequence(std::move(sequence));
    REQUIRE(in_sequence.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(std::get<0>(in_sequence[i]) == i);
    CHECK(std::get<2>(in_sequence[0]) <= std::get<1>(in_sequence[1]));
    CHECK(std::get<2>(in_sequence[1]) <= std::get<1>(in_sequence[2]));

    auto square = csp::multiprocess("square", [](int x) {
        csp::sleep(std::chrono::milliseconds(30 - 5 * x));  // finish in reverse order
        return x * x;
    });
    std::vector<csp::Process<int>> squares;
    for (int i = 0; i < 6; ++i) squares.push_back(square(i));
    CHECK(csp::Parallel(std::move(squares)) == std::vector<int>{0, 1, 4, 9, 16, 25});
    CHECK(unreaped_children() == "");
}

// proc * n and n * proc: each copy is its own OS process and holds its own
// copies of the ends; a pool of children shares one job channel and one
// result channel, and the results channel retires only after the last copy.
TEST_CASE("proc * n makes n OS processes each with its own ends", "[multiprocess][results]") {
    auto my_pid = csp::multiprocess("pid", [] { return static_cast<int>(getpid()); });
    std::vector<int> pids = csp::Parallel(my_pid() * 4);
    std::vector<int> more = csp::Parallel(3 * my_pid());
    pids.insert(pids.end(), more.begin(), more.end());
    std::sort(pids.begin(), pids.end());
    CHECK(pids.size() == 7);
    CHECK(std::adjacent_find(pids.begin(), pids.end()) == pids.end());
    CHECK(std::find(pids.begin(), pids.end(), static_cast<int>(getpid())) == pids.end());

    constexpr int jobs_count = 300;
    csp::Channel<int> jobs{"jobs", csp::buffer(8)};
    csp::Channel<std::pair<int, int>> results{"results"};
    auto worker = csp::multiprocess("worker", [](csp::ChannelIn<int> in, csp::ChannelOut<std::pair<int, int>> out) {
        int done = 0;
        try {
            for (;;) {
                const int x = in();
                out(std::pair(x, x * x));
                ++done;
            }
        } catch (const csp::ChannelRetireException&) {
        }
        return done;
    });
    auto producer = csp::process("producer", [](csp::ChannelOut<int> out) {
        for (int i = 0; i < jobs_count; ++i) out(i);
    });
    std::vector<std::pair<int, int>> got;
    auto collector = csp::process("collector", [&](csp::ChannelIn<std::pair<int, int>> in) {
        got = read_until_retired(in);
    });
    std::vector<csp::Process<int>> pool = worker(jobs.reader(), results.writer()) * 3;
    std::vector<csp::Process<>> network;
    for (auto& p : pool) network.push_back(std::move(p));  // moved: a copy would keep its ends in
    network.push_back(producer(jobs.writer()));
    network.push_back(collector(results.reader()));
    csp::Parallel(std::move(network));

    std::sort(got.begin(), got.end());
    std::vector<std::pair<int, int>> expected;
    for (int i = 0; i < jobs_count; ++i) expected.emplace_back(i, i * i);
    CHECK(got.size() == expected.size());
    CHECK(got == expected);
    CHECK(unreaped_children() == "");
}

// A multiprocess spawned by a fiber runs beside it and is joined (its OS
// process reaped) when the spawning fiber ends.
TEST_CASE("a multiprocess spawned from a fiber is joined when the fiber ends", "[multiprocess][results]") {
    csp::Channel<int> channel{"from-spawned", csp::buffer(1)};
    auto in = channel.reader();
    auto child = csp::multiprocess("spawned", [](csp::ChannelOut<int> out) {
        csp::sleep(50ms);
        out(7);
    });
    bool spawn_returned = false;
    auto spawner = csp::process("spawner", [&](csp::ChannelOut<int> out) {
        csp::Spawn(child(std::move(out)));
        spawn_returned = true;
    });
    csp::Parallel(spawner(channel.writer()));

    CHECK(spawn_returned);
    CHECK(unreaped_children() == "");
    CHECK(in() == 7);
    CHECK(csp_test::ending_of([&] { in(); }) == Ending::retired);
}

// ===========================================================================
// Values serialized through channels

namespace {

// ParcelHolder: frees a parcel at the end of a scope.
struct ParcelHolder {
    csp::channels::Parcel* p;
    explicit ParcelHolder(csp::channels::Parcel* parcel) : p(parcel) {}
    ~ParcelHolder() { csp::channels::parcel_free(p); }
    ParcelHolder(const ParcelHolder&) = delete;
    ParcelHolder& operator=(const ParcelHolder&) = delete;
};

// round_trip(value, buffer): this process sends `value` to a child, which
// compares it with its own copy (the capture, copied by the fork) and sends
// back what it read. A value damaged on the way there shows in the child's
// answer even if the way back undid the damage.
template <class T>
void round_trip(const char* what, const T& value, int buffer) {
    CAPTURE(what, buffer);
    auto there = csp_test::make_channel<T>(buffer, "there");
    auto back = csp_test::make_channel<T>(buffer, "back");
    auto echo = csp::multiprocess("echo", [expected = value](csp::ChannelIn<T> in, csp::ChannelOut<T> out) {
        T got = in();
        const bool intact = got == expected;
        out(std::move(got));
        return intact;
    });
    auto sender = csp::process("sender", [&value](csp::ChannelOut<T> out, csp::ChannelIn<T> in) {
        out(value);
        return in();
    });
    auto [arrived_intact, returned] = csp::Parallel(echo(there.reader(), back.writer()), sender(there.writer(), back.reader()));
    CHECK(arrived_intact);
    const bool came_back_intact = returned == value;
    CHECK(came_back_intact);
}

}  // namespace

TEST_CASE("values of every kind cross to a child and back intact", "[multiprocess][values]") {
    const int buffer = GENERATE(0, 16);

    round_trip("int", 42, buffer);
    round_trip("Plain (trivially copyable struct)", Plain{3, -1.5, "xyz"}, buffer);
    round_trip("std::string", std::string("hello across"), buffer);
    round_trip("empty std::string", std::string(), buffer);
    round_trip("std::string with embedded zeros", std::string("a\0b\0\0c\0", 7), buffer);
    std::string every_byte;
    for (int i = 0; i < 1024; ++i) every_byte.push_back(static_cast<char>(i % 256));
    round_trip("std::string of every byte value", every_byte, buffer);
    std::vector<int> thousand(1000);
    std::iota(thousand.begin(), thousand.end(), -500);
    round_trip("std::vector<int>", thousand, buffer);
    round_trip("empty std::vector<int>", std::vector<int>{}, buffer);
    round_trip("std::map<std::string, int>", std::map<std::string, int>{{"a", 1}, {"b", -2}, {std::string("z\0", 2), 3}},
               buffer);
    round_trip("std::tuple", std::tuple<int, std::string, std::vector<double>>(7, "seven", {7.0, 0.7}), buffer);
    round_trip("std::pair", std::pair<std::string, int>("pair", 2), buffer);
    round_trip("std::optional engaged", std::optional<std::string>("some"), buffer);
    round_trip("std::optional empty", std::optional<int>(), buffer);
    round_trip("std::variant", std::variant<int, std::string, std::vector<int>>(std::vector<int>{1, 2, 3}), buffer);
    round_trip("Job (serialize member)", sample_job(), buffer);
    round_trip("Tagged (free serialize)", Tagged{"tag", {"x", "", std::string("\0y", 2)}}, buffer);

    // Nested containers.
    using Deep = std::map<std::string, std::vector<std::optional<std::tuple<int, std::string>>>>;
    round_trip("nested map of vectors of optional tuples",
               Deep{{"first", {std::tuple(1, std::string("one")), std::nullopt, std::tuple(3, std::string())}},
                    {"empty", {}},
                    {"second", {std::nullopt}}},
               buffer);
    round_trip("vector of vectors of strings",
               std::vector<std::vector<std::string>>{{"a", "b"}, {}, {std::string(300, 'q')}}, buffer);
    using Python = std::vector<std::variant<std::monostate, int, std::string>>;
    round_trip("a Python list [42, None, 'hello']", Python{42, std::monostate{}, std::string("hello")}, buffer);
    round_trip("optional vector of Jobs", std::optional<std::vector<Job>>(std::vector<Job>{sample_job(), Job{}}), buffer);
    round_trip("map of maps of vectors of Tagged",
               std::map<int, std::map<std::string, std::vector<Tagged>>>{
                   {1, {{"k", {Tagged{"t1", {"a"}}, Tagged{}}}}}, {2, {}}},
               buffer);
    CHECK(unreaped_children() == "");
}

// A vector of numbers or a string is packed by csp itself (one pass each
// way, csp/serialize.hpp: Contiguous), in the very bytes cereal writes for
// it: what one side packs, the other unpacks, whichever did it. Checked
// here against cereal directly, both ways, for element types of every
// width, empty and not; and the types left to cereal (bool elements, an
// element aligned beyond 8 bytes) still cross.
namespace {

template <class T>
void packed_as_cereal_does(const T& value) {
    CAPTURE(typeid(T).name(), value.size());
    STATIC_REQUIRE(csp::detail::Contiguous<T>::value);
    std::ostringstream cereal_bytes;
    {
        cereal::BinaryOutputArchive archive(cereal_bytes);
        archive(value);
    }
    ParcelHolder ours(csp::detail::pack_value<T>(&value));
    REQUIRE(ours.p != nullptr);
    const std::string packed(reinterpret_cast<const char*>(ours.p->data()), ours.p->size);
    CHECK(packed == cereal_bytes.str());
    CHECK(ours.p->capacity - ours.p->size >= csp::channels::kParcelTailRoom);

    // cereal's bytes, unpacked by csp; and csp's, by cereal.
    ParcelHolder theirs(csp::channels::parcel_new(cereal_bytes.str().size()));
    std::memcpy(theirs.p->data(), cereal_bytes.str().data(), cereal_bytes.str().size());
    alignas(T) unsigned char room[sizeof(T)];
    REQUIRE(csp::detail::unpack_value<T>(theirs.p, room));
    T* unpacked = std::launder(reinterpret_cast<T*>(room));
    CHECK(*unpacked == value);
    unpacked->~T();
    T by_cereal;
    csp::detail::read_parcel(ours.p, by_cereal);
    CHECK(by_cereal == value);
}

}  // namespace

TEST_CASE("a vector of numbers or a string crosses in the bytes cereal writes for it", "[multiprocess][values]") {
    packed_as_cereal_does(std::vector<char>{});
    packed_as_cereal_does(std::vector<char>{'a', '\0', 'b'});
    std::vector<double> doubles(5000);
    std::iota(doubles.begin(), doubles.end(), -0.25);
    packed_as_cereal_does(doubles);
    packed_as_cereal_does(std::vector<std::int16_t>{-1, 2, -3});
    packed_as_cereal_does(std::vector<std::uint64_t>{~std::uint64_t{0}, 7});
    packed_as_cereal_does(std::string());
    packed_as_cereal_does(std::string("with\0zero", 9));
    packed_as_cereal_does(std::u16string(u"sixteen"));
    packed_as_cereal_does(std::u32string(70000, U'x'));

    // A parcel whose count does not match its size unpacks to nothing (the
    // reader's channel is then poisoned), never to a wrong value.
    const std::vector<std::int32_t> two{1, 2};
    ParcelHolder bad(csp::detail::pack_value<std::vector<std::int32_t>>(&two));
    bad.p->size -= 1;
    alignas(std::vector<std::int32_t>) unsigned char room[sizeof(std::vector<std::int32_t>)];
    CHECK_FALSE(csp::detail::unpack_value<std::vector<std::int32_t>>(bad.p, room));

    STATIC_REQUIRE_FALSE(csp::detail::Contiguous<std::vector<bool>>::value);
    STATIC_REQUIRE_FALSE(csp::detail::Contiguous<std::vector<long double>>::value);
    STATIC_REQUIRE_FALSE(csp::detail::Contiguous<std::vector<std::string>>::value);
    round_trip("std::vector<bool>", std::vector<bool>{true, false, true}, 0);
    round_trip("std::vector<long double>", std::vector<long double>{1.5L, -2.25L}, 0);
    round_trip("std::u32string", std::u32string(U"\U0001F600 thirty-two"), 0);
    round_trip("std::vector<double> of 1 MiB", std::vector<double>(1 << 17, -1.0 / 3), 16);
    CHECK(unreaped_children() == "");
}

// Trivially copyable values of the sizes around the room a waiting reader
// keeps for a value from another OS process (48 bytes: 8, 48 fit, 49 and
// 4096 go through an arena parcel), with the reader waiting first (the
// writer fills its room) and with the writer waiting first (it packs its
// value when it queues), each way across the boundary: every value intact,
// once, in order.
namespace {

template <std::size_t N>
void sized_values_cross(bool reader_first, Side writer_side, Side reader_side) {
    using V = std::array<unsigned char, N>;
    CAPTURE(N, reader_first, name_of(writer_side), name_of(reader_side));
    constexpr int count = 50;
    const auto value = [](int i) {
        V v;
        for (std::size_t b = 0; b < N; ++b) v[b] = static_cast<unsigned char>(i * 31 + b * 7);
        return v;
    };
    auto channel = csp_test::make_channel<V>(0, "sized");
    const auto write_all = [value](csp::ChannelOut<V> out, bool pause) {
        for (int i = 0; i < count; ++i) {
            if (pause) csp::sleep(std::chrono::milliseconds(1));  // the reader waits first
            out(value(i));
        }
        return 0;
    };
    const auto read_all = [value](csp::ChannelIn<V> in, bool pause) {
        int intact = 0;
        for (int i = 0; i < count; ++i) {
            if (pause) csp::sleep(std::chrono::milliseconds(1));  // the writer waits first
            intact += in() == value(i);
        }
        return intact;
    };
    auto [written, intact] = csp::Parallel(on(writer_side, "writer", write_all, channel.writer(), reader_first),
                                           on(reader_side, "reader", read_all, channel.reader(), !reader_first));
    CHECK(written == 0);
    CHECK(intact == count);
}

}  // namespace

TEST_CASE("small and large trivially copyable values cross whichever side waits first", "[multiprocess][values]") {
    const bool reader_first = GENERATE(true, false);
    const bool child_writes = GENERATE(true, false);
    const Side writer = child_writes ? Side::child : Side::fiber;
    const Side reader = child_writes ? Side::fiber : Side::child;
    sized_values_cross<8>(reader_first, writer, reader);
    sized_values_cross<48>(reader_first, writer, reader);
    sized_values_cross<49>(reader_first, writer, reader);
    sized_values_cross<4096>(reader_first, writer, reader);
    CHECK(unreaped_children() == "");
}

// 100 MB in one value, each way: a child makes it and this process checks
// it, then this process sends it and the child checks it. Content is
// compared by checksum (a failing CHECK must not print 100 MB).
TEST_CASE("a 100 MB std::vector<char> crosses both ways intact", "[multiprocess][values][big]") {
    const int buffer = GENERATE(0, 1);
    CAPTURE(buffer);
    const std::uint64_t expected = checksum(big_value(big_size));

    auto to_parent = csp_test::make_channel<std::vector<char>>(buffer, "big-up");
    auto maker = csp::multiprocess("maker", [](csp::ChannelOut<std::vector<char>> out) { out(big_value(big_size)); });
    auto taker = csp::process("taker", [](csp::ChannelIn<std::vector<char>> in) {
        const std::vector<char> v = in();
        return std::pair(v.size(), checksum(v));
    });
    const auto up = std::get<1>(csp::Parallel(maker(to_parent.writer()), taker(to_parent.reader())));
    CHECK(up.first == big_size);
    CHECK(up.second == expected);

    auto to_child = csp_test::make_channel<std::vector<char>>(buffer, "big-down");
    auto checker = csp::multiprocess("checker", [](csp::ChannelIn<std::vector<char>> in) {
        const std::vector<char> v = in();
        return std::pair(v.size(), checksum(v));
    });
    auto sender = csp::process("sender", [](csp::ChannelOut<std::vector<char>> out) { out(big_value(big_size)); });
    const auto down = std::get<0>(csp::Parallel(checker(to_child.reader()), sender(to_child.writer())));
    CHECK(down.first == big_size);
    CHECK(down.second == expected);
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Alternation across OS processes

// A fiber here alts over three channels, each written by its own child, with
// every choice form. Each value arrives once, each channel's in order, and
// when every writer has left the choice throws ChannelRetireException.
TEST_CASE("a fiber alts over channels written by several children: exact counts", "[multiprocess][alternation]") {
    enum Mode { pri_select, fair_select, alt_select, pri_select_vector, alternation_fair, alternation_pri };
    const int buffer = GENERATE(0, 16);
    const int mode = GENERATE(pri_select, fair_select, alt_select, pri_select_vector, alternation_fair, alternation_pri);
    CAPTURE(buffer, mode);
    constexpr int writers = 3, per_writer = 150;

    std::vector<csp::Channel<int>> channels;
    for (int w = 0; w < writers; ++w) channels.push_back(csp_test::make_channel<int>(buffer, "alt-source"));
    auto writer = csp::multiprocess("alt-writer", [](csp::ChannelOut<int> out, int w) {
        for (int i = 0; i < per_writer; ++i) out(w * per_writer + i);
    });

    std::array<std::vector<int>, writers> got;
    Ending ending = Ending::running;
    auto alter = csp::process("alter", [&](csp::ChannelIn<int> a, csp::ChannelIn<int> b, csp::ChannelIn<int> c) {
        const auto value = [](const auto& r) { return std::visit([](int v) { return v; }, r); };
        ending = csp_test::ending_of([&] {
            switch (mode) {
                case pri_select:
                    for (;;) {
                        auto r = csp::PriSelect(csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c));
                        got[r.index()].push_back(value(r));
                    }
                case fair_select:
                    for (;;) {
                        auto r = csp::FairSelect(csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c));
                        got[r.index()].push_back(value(r));
                    }
                case alt_select:
                    for (;;) {
                        auto r = csp::AltSelect(csp::InputGuard(a), csp::InputGuard(b), csp::InputGuard(c));
                        got[r.index()].push_back(value(r));
                    }
                case pri_select_vector: {
                    std::vector<csp::InputGuard<int>> guards;
                    guards.emplace_back(a);
                    guards.emplace_back(b);
                    guards.emplace_back(c);
                    for (;;) {
                        auto [index, v] = csp::PriSelect(guards);
                        got[index].push_back(v.value_or(-1));
                    }
                }
                default: {
                    csp::Alternation alt{
                        csp::InputGuard(a, [&](int v) { got[0].push_back(v); }),
                        csp::InputGuard(b, [&](int v) { got[1].push_back(v); }),
                        csp::InputGuard(c, [&](int v) { got[2].push_back(v); }),
                    };
                    for (;;) mode == alternation_fair ? alt.fair_execute() : alt.pri_execute();
                }
            }
        });
    });
    csp::Parallel(writer(channels[0].writer(), 0), writer(channels[1].writer(), 1), writer(channels[2].writer(), 2),
                  alter(channels[0].reader(), channels[1].reader(), channels[2].reader()));

    CHECK(ending == Ending::retired);
    for (int w = 0; w < writers; ++w) {
        CAPTURE(w);
        std::vector<int> expected(per_writer);
        std::iota(expected.begin(), expected.end(), w * per_writer);
        CHECK(got[w] == expected);
    }
    CHECK(unreaped_children() == "");
}

// A child alts with output guards to this process; here either two plain
// readers take the values or one fiber alts with input guards over both
// (a choice on each end of the same channels, across the boundary). What the
// child says it sent on each channel is exactly what arrived there.
TEST_CASE("a child alts with output guards to readers here: exact counts", "[multiprocess][alternation]") {
    const int buffer = GENERATE(0, 16);
    const bool parent_alts = GENERATE(false, true);
    CAPTURE(buffer, parent_alts);
    constexpr int count = 400;
    auto left = csp_test::make_channel<int>(buffer, "left");
    auto right = csp_test::make_channel<int>(buffer, "right");

    auto sender = csp::multiprocess("out-alter", [](csp::ChannelOut<int> a, csp::ChannelOut<int> b) {
        std::array<int, 2> sent{};
        for (int i = 0; i < count; ++i) {
            auto r = csp::FairSelect(csp::OutputGuard(a, i), csp::OutputGuard(b, i));
            ++sent[r.index()];
        }
        return sent;
    });
    std::array<std::vector<int>, 2> got;
    auto plain_reader = csp::process("reader", [&](csp::ChannelIn<int> in, int k) { got[k] = read_until_retired(in); });
    auto alting_reader = csp::process("in-alter", [&](csp::ChannelIn<int> a, csp::ChannelIn<int> b) {
        try {
            for (;;) {
                auto r = csp::AltSelect(csp::InputGuard(a), csp::InputGuard(b));
                got[r.index()].push_back(std::visit([](int v) { return v; }, r));
            }
        } catch (const csp::ChannelRetireException&) {
        }
    });
    std::array<int, 2> sent{};
    if (parent_alts) {
        sent = std::get<0>(csp::Parallel(sender(left.writer(), right.writer()), alting_reader(left.reader(), right.reader())));
    } else {
        sent = std::get<0>(csp::Parallel(sender(left.writer(), right.writer()), plain_reader(left.reader(), 0),
                                         plain_reader(right.reader(), 1)));
    }

    CHECK(sent[0] + sent[1] == count);
    CHECK(got[0].size() == static_cast<std::size_t>(sent[0]));
    CHECK(got[1].size() == static_cast<std::size_t>(sent[1]));
    CHECK(std::is_sorted(got[0].begin(), got[0].end()));
    CHECK(std::is_sorted(got[1].begin(), got[1].end()));
    std::vector<int> all(got[0]);
    all.insert(all.end(), got[1].begin(), got[1].end());
    CHECK(csp_test::each_once(all, count));
    CHECK(unreaped_children() == "");
}

// A TimeoutGuard fires in a child when nothing arrives (never early), and
// an input guard beside a long timeout wins once this process writes.
TEST_CASE("a TimeoutGuard fires in a child and an input beats it once written", "[multiprocess][alternation][timeout]") {
    csp::Channel<int> data{"timeout-data"}, ready{"timeout-ready"};
    auto child = csp::multiprocess("timer", [](csp::ChannelIn<int> in, csp::ChannelOut<int> ready) {
        const auto start = Clock::now();
        const auto first = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(60ms));
        const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
        ready(1);
        // 20 s: a timeout here would mean the value never arrived.
        const auto second = csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(20s));
        const int value = second.index() == 0 ? std::get<0>(second) : -1;
        return std::tuple<int, long long, int, int>(static_cast<int>(first.index()), waited,
                                                    static_cast<int>(second.index()), value);
    });
    auto writer = csp::process("late-writer", [](csp::ChannelOut<int> out, csp::ChannelIn<int> ready) {
        ready();
        out(77);
    });
    const auto [first, waited, second, value] = std::get<0>(csp::Parallel(child(data.reader(), ready.writer()),
                                                                          writer(data.writer(), ready.reader())));
    CHECK(first == 1);
    CHECK(waited >= 60);
    CHECK(second == 0);
    CHECK(value == 77);
    CHECK(unreaped_children() == "");
}

// A child parked in a choice (input guards or output guards) wakes when
// this process poisons one of its channels (the choice throws poison), or
// retires all of them (every guard disabled: the choice throws retire).
TEST_CASE("poison or retire reaches a child parked in a choice", "[multiprocess][alternation][poison]") {
    const bool poison = GENERATE(true, false);
    const bool output_guards = GENERATE(false, true);
    CAPTURE(poison, output_guards);
    csp::Channel<int> a{"parked-a"}, b{"parked-b"};

    auto in_alter = csp::multiprocess("parked-in", [](csp::ChannelIn<int> x, csp::ChannelIn<int> y) {
        return csp_test::ending_of([&] { (void)csp::AltSelect(csp::InputGuard(x), csp::InputGuard(y)); });
    });
    auto out_alter = csp::multiprocess("parked-out", [](csp::ChannelOut<int> x, csp::ChannelOut<int> y) {
        return csp_test::ending_of([&] { (void)csp::AltSelect(csp::OutputGuard(x, 1), csp::OutputGuard(y, 2)); });
    });
    // The far ends never communicate: after a while (the child parked) they
    // poison the first channel, or both leave.
    auto far_writers = csp::process("far-writers", [](csp::ChannelOut<int> x, csp::ChannelOut<int> y, bool poison) {
        csp::sleep(100ms);
        if (poison)
            x.poison();
        else
            csp::retire(x, y);
    });
    auto far_readers = csp::process("far-readers", [](csp::ChannelIn<int> x, csp::ChannelIn<int> y, bool poison) {
        csp::sleep(100ms);
        if (poison)
            x.poison();
        else
            csp::retire(x, y);
    });
    Ending ending = Ending::running;
    if (output_guards)
        ending = std::get<0>(csp::Parallel(out_alter(a.writer(), b.writer()), far_readers(a.reader(), b.reader(), poison)));
    else
        ending = std::get<0>(csp::Parallel(in_alter(a.reader(), b.reader()), far_writers(a.writer(), b.writer(), poison)));

    CHECK(ending == (poison ? Ending::poisoned : Ending::retired));
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Children that die

namespace {

enum class Death { abort_call, raise_sigkill, segfault, exit_3, killed_while_parked };

const char* name_of(Death death) {
    switch (death) {
        case Death::abort_call: return "abort()";
        case Death::raise_sigkill: return "raise(SIGKILL)";
        case Death::segfault: return "write through a null pointer";
        case Death::exit_3: return "_exit(3)";
        case Death::killed_while_parked: return "SIGKILL from the parent while parked in a read";
    }
    return "?";
}

}  // namespace

// A child dies while partners here wait on its channels (a reader, a writer
// and a fiber parked in a choice): they all wake with poison instead of
// hanging, Parallel throws ProcessError holding an OSProcessError with the
// signal or exit status, the channels stay poisoned, and the child is reaped.
TEST_CASE("a child that dies poisons its channels and Parallel throws an OSProcessError", "[multiprocess][faults]") {
    const Death death = GENERATE(Death::abort_call, Death::raise_sigkill, Death::segfault, Death::exit_3,
                                 Death::killed_while_parked);
    const int buffer = GENERATE(0, 16);
    CAPTURE(name_of(death), buffer);

    auto from_child = csp_test::make_channel<int>(buffer, "from-dying");
    auto to_child = csp_test::make_channel<int>(buffer, "to-dying");
    auto alt_channel = csp_test::make_channel<int>(buffer, "alt-on-dying");
    csp::Channel<int> pid_channel{"dying-pid", csp::buffer(1)};
    csp::Channel<int> never{"never-written"};

    auto dying = csp::multiprocess(
        "dying", [](csp::ChannelOut<int>, csp::ChannelIn<int>, csp::ChannelOut<int>, csp::ChannelOut<int> pid_out,
                    csp::ChannelIn<int> never_in, Death death) {
            const rlimit no_core{0, 0};
            setrlimit(RLIMIT_CORE, &no_core);  // a crash here is on purpose: no core file
            // Catch2's handlers of fatal signals came along with the fork and
            // would print a second (failing) test report from this child.
            // Take the default action, as a program without Catch2 would
            // (csp's own SIGSEGV handler acts only on fiber stack overflows).
            std::signal(SIGABRT, SIG_DFL);
            std::signal(SIGSEGV, SIG_DFL);
            pid_out(static_cast<int>(getpid()));
            if (death == Death::killed_while_parked) never_in();  // nobody writes: parked until killed
            csp::sleep(100ms);  // let the partners block first
            switch (death) {
                case Death::abort_call: std::abort();
                case Death::raise_sigkill: std::raise(SIGKILL); break;
                case Death::segfault: {
                    volatile int* volatile nowhere = nullptr;
                    *nowhere = 1;
                    break;
                }
                default: _exit(3);
            }
            return 0;  // not reached
        });

    Seen reader, writer;
    Ending alter = Ending::running;
    int pid = 0;
    auto partner_reader = csp::process("partner-reader", [&](csp::ChannelIn<int> in) { reader = keep_reading(in); });
    auto partner_writer = csp::process("partner-writer", [&](csp::ChannelOut<int> out) { writer = keep_writing(out); });
    // A timeout far beyond the test's, so a missing poison fails instead of hanging.
    auto partner_alter = csp::process("partner-alter", [&](csp::ChannelIn<int> in) {
        alter = csp_test::ending_of([&] {
            if (csp::PriSelect(csp::InputGuard(in), csp::TimeoutGuard(30s)).index() == 1) throw std::runtime_error("timed out");
        });
    });
    auto killer = csp::process("killer", [&](csp::ChannelIn<int> pids, csp::ChannelOut<int>, bool kill_it) {
        pid = pids();
        if (kill_it) {
            csp::sleep(100ms);  // let it park in the read
            ::kill(pid, SIGKILL);
        }
    });

    std::string process_name, what;
    int caught = 0, os_errors = 0, signal = -2, status = -2, error_pid = 0;
    try {
        csp::Parallel(dying(from_child.writer(), to_child.reader(), alt_channel.writer(), pid_channel.writer(),
                            never.reader(), death),
                      partner_reader(from_child.reader()), partner_writer(to_child.writer()),
                      partner_alter(alt_channel.reader()),
                      killer(pid_channel.reader(), never.writer(), death == Death::killed_while_parked));
    } catch (const csp::ProcessError& error) {
        ++caught;
        process_name = error.process_name();
        try {
            error.rethrow_original();
        } catch (const csp::OSProcessError& os) {
            ++os_errors;
            what = os.what();
            signal = os.signal();
            status = os.exit_status();
            error_pid = os.pid();
        } catch (const std::exception& other) {
            what = other.what();
        }
    }

    CHECK(caught == 1);
    CHECK(os_errors == 1);
    CHECK(process_name == "dying");
    CHECK(reader.ending == Ending::poisoned);
    CHECK(reader.count == 0);
    CHECK(writer.ending == Ending::poisoned);
    CHECK(writer.count == buffer);
    CHECK(alter == Ending::poisoned);
    CHECK(pid > 0);
    CHECK(error_pid == pid);
    switch (death) {
        case Death::abort_call:
            CHECK(signal == SIGABRT);
            CHECK(status == -1);
            break;
        case Death::raise_sigkill:
        case Death::killed_while_parked:
            CHECK(signal == SIGKILL);
            CHECK(status == -1);
            break;
        case Death::segfault:
            CHECK(signal == SIGSEGV);
            CHECK(status == -1);
            CHECK_THAT(what, Contains("signal 11"));
            break;
        case Death::exit_3:
            CHECK(signal == 0);
            CHECK(status == 3);
            CHECK_THAT(what, Contains("exited with status 3"));
            break;
    }
    CHECK_THAT(what, Contains(std::to_string(pid)));
    // Poison stays: a later operation here on the child's channels throws it too.
    CHECK(csp_test::ending_of([&] { from_child.reader()(); }) == Ending::poisoned);
    CHECK(csp_test::ending_of([&] { to_child.writer()(1); }) == Ending::poisoned);
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Fork churn

// 1000 children one after another, each in a Parallel with a fiber reader and
// a local fiber pair, while a spawned pair keeps talking in the background
// the whole time. Nothing hangs and every value is counted.
TEST_CASE("1000 multiprocesses one after another while fibers keep talking", "[multiprocess][stress]") {
    constexpr int forks = 1000, local_values = 10;
    csp::Channel<int> background{"background"};
    // Atomic: the driver samples the count while the reader, maybe on
    // another worker, bumps it.
    std::atomic<long> background_written{0}, background_read{0};
    long background_read_before = 0, background_read_after = 0;
    int background_out_of_order = 0;
    long child_results = 0, parent_reads = 0, local_sum = 0;

    auto background_writer = csp::process("background-writer", [&](csp::ChannelOut<int> out) {
        for (int i = 0;; ++i) {
            out(i);
            ++background_written;
        }
    });
    auto background_reader = csp::process("background-reader", [&](csp::ChannelIn<int> in) {
        for (int expected = 0;; ++expected) {
            if (in() != expected) ++background_out_of_order;
            ++background_read;
        }
    });
    auto child = csp::multiprocess("churn-child", [](csp::ChannelOut<int> out, int i) {
        out(i);
        return i + 1;
    });
    auto reader = csp::process("churn-reader", [](csp::ChannelIn<int> in) { return in(); });
    auto local_writer = csp::process("local-writer", [](csp::ChannelOut<int> out) {
        for (int i = 0; i < local_values; ++i) out(i);
        return 0;
    });
    auto local_reader = csp::process("local-reader", [](csp::ChannelIn<int> in) {
        int sum = 0;
        for (int i = 0; i < local_values; ++i) sum += in();
        return sum;
    });
    auto driver = csp::process("driver", [&](csp::ChannelOut<int> bg_out, csp::ChannelIn<int> bg_in) {
        csp::Spawn(background_writer(bg_out), background_reader(bg_in));
        background_read_before = background_read;
        for (int i = 0; i < forks; ++i) {
            csp::Channel<int> wire{"churn"};
            csp::Channel<int> local{"churn-local"};
            auto [returned, read, nothing, sum] =
                csp::Parallel(child(wire.writer(), i), reader(wire.reader()), local_writer(local.writer()),
                              local_reader(local.reader()));
            (void)nothing;
            child_results += returned;
            parent_reads += read;
            local_sum += sum;
        }
        background_read_after = background_read;
        bg_out.poison();  // ends the spawned pair; they are joined when this body ends
    });
    csp::Parallel(driver(background.writer(), background.reader()));

    CHECK(child_results == static_cast<long>(forks) * (forks + 1) / 2);
    CHECK(parent_reads == static_cast<long>(forks) * (forks - 1) / 2);
    CHECK(local_sum == static_cast<long>(forks) * local_values * (local_values - 1) / 2);
    // The background went on while children were forked and reaped.
    CHECK(background_read_after - background_read_before >= forks);
    CHECK(background_written.load() == background_read.load());
    CHECK(background_out_of_order == 0);
    CHECK(unreaped_children() == "");
}

// Entries of /dev/shm (named POSIX shared memory and semaphores).
std::vector<std::string> dev_shm_entries() {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", error))
        names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// The number of mappings of this process (lines of /proc/self/maps).
int mapping_count() {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(maps, line)) ++n;
    return n;
}

// The arena is an anonymous shared mapping made once: forking leaves no named
// shared memory that could outlive the program, and the mapping count does
// not grow with the number of children (a mapping per child, or per channel
// that crossed, would show here long before the kernel's limit).
TEST_CASE("forks leave no shared memory behind: /dev/shm unchanged, mapping count flat", "[multiprocess][stress]") {
    const std::vector<std::string> shm_before = dev_shm_entries();
    auto child = csp::multiprocess("mapping-child", [](csp::ChannelOut<std::string> out, int i) {
        out(std::string(1000 + i, 'x'));
        return i;
    });
    auto reader = csp::process("mapping-reader", [](csp::ChannelIn<std::string> in) { return in().size(); });
    auto round = [&](int from, int to) {
        for (int i = from; i < to; ++i) {
            csp::Channel<std::string> wire{"mapping-wire"};
            auto [returned, size] = csp::Parallel(child(wire.writer(), i), reader(wire.reader()));
            REQUIRE(returned == i);
            REQUIRE(size == static_cast<std::size_t>(1000 + i));
        }
    };
    round(0, 20);  // warm-up: io helpers and worker stacks are made by now
    const int maps_warm = mapping_count();
    CHECK(dev_shm_entries() == shm_before);
    round(20, 170);
    const int maps_after = mapping_count();
    INFO("mappings after 20 children: " << maps_warm << ", after 170: " << maps_after);
    CHECK(maps_after <= maps_warm + 8);
    CHECK(dev_shm_entries() == shm_before);
    CHECK(unreaped_children() == "");
}

// The arena hands a block out once, whoever freed it, and counts what it
// holds exactly (runtime/arena.cpp; a cache of freed small blocks in front of
// its allocator, tried in session 27, was checked by this). This process makes
// 4000 blocks of 0 to 200 bytes, each filled with its own mark; frees every
// other one; makes 2000 more, in the room just freed; a child frees a hundred
// of them (they go back by the heap's list for other OS processes' frees);
// this process makes 500 more. Every live block keeps its mark and none
// overlaps another, and once all are freed what the arena counts as in use
// is back where it began.
TEST_CASE("the arena hands a freed small block out once, and keeps no count of it", "[multiprocess][arena]") {
    struct Block {
        unsigned char* at;
        std::size_t size;
        unsigned char mark;
    };
    auto freer = csp::multiprocess("arena-freer", [](std::vector<std::uint64_t> blocks) {
        for (std::uint64_t b : blocks) csp::runtime::arena_free(reinterpret_cast<void*>(static_cast<std::uintptr_t>(b)));
        return static_cast<int>(blocks.size());
    });
    REQUIRE(std::get<0>(csp::Parallel(freer(std::vector<std::uint64_t>{}))) == 0);  // (warm-up: the child's records)
    const std::size_t before = csp::runtime::arena_in_use();
    std::vector<Block> live;
    std::uint32_t seed = 12345;
    const auto make = [&](int n) {
        for (int i = 0; i < n; ++i) {
            seed = seed * 1664525u + 1013904223u;
            const std::size_t size = (seed >> 8) % 201;
            auto* at = static_cast<unsigned char*>(csp::runtime::arena_allocate(size));
            const auto mark = static_cast<unsigned char>(live.size() * 7 + 1);
            std::memset(at, mark, size);
            live.push_back({at, size, mark});
        }
    };
    const auto check = [&] {
        for (const Block& b : live) {
            for (std::size_t k = 0; k < b.size; ++k) REQUIRE(b.at[k] == b.mark);
        }
        std::vector<Block> by_address = live;
        std::sort(by_address.begin(), by_address.end(), [](const Block& x, const Block& y) { return x.at < y.at; });
        for (std::size_t i = 1; i < by_address.size(); ++i) {
            REQUIRE(by_address[i - 1].at + std::max<std::size_t>(by_address[i - 1].size, 1) <= by_address[i].at);
        }
    };
    make(4000);
    std::vector<Block> halved;
    for (std::size_t i = 0; i < live.size(); ++i) {
        if (i % 2) csp::runtime::arena_free(live[i].at);
        else halved.push_back(live[i]);
    }
    live.swap(halved);
    make(2000);
    check();
    std::vector<std::uint64_t> given;
    for (int i = 0; i < 100; ++i) {
        given.push_back(reinterpret_cast<std::uintptr_t>(live.back().at));
        live.pop_back();
    }
    REQUIRE(std::get<0>(csp::Parallel(freer(given))) == 100);
    make(500);
    check();
    for (const Block& b : live) csp::runtime::arena_free(b.at);
    const std::size_t after = csp::runtime::arena_in_use();
    INFO("arena in use before: " << before << " bytes, after: " << after);
    CHECK(after <= before + 16 * 1024);
    CHECK(after + 16 * 1024 >= before);
    CHECK(unreaped_children() == "");
}

// Forking in a loop keeps the shared arena bounded: what a child made there
// for itself (its inbox, its processes' records) is taken back when it is
// reaped, and the next child reuses it. 100 000 children, each talking to a
// fiber here and returning a value; the arena may not grow with their number.
TEST_CASE("100 000 forks in a loop keep the shared arena bounded", "[multiprocess][stress][leak]") {
    auto child = csp::multiprocess("leak-child", [](csp::ChannelOut<int> out, int i) {
        // A few fibers of its own, and a choice, so that it has parkers and
        // waiter blocks to leave behind.
        csp::Channel<int> inner{"leak-inner"};
        auto [got, sent] = csp::Parallel(
            csp::process([](csp::ChannelIn<int> in) { return in(); })(inner.reader()),
            csp::process([](csp::ChannelOut<int> o, int v) { o(v); return v; })(inner.writer(), i));
        out(got);
        return sent;
    });
    auto reader = csp::process("leak-reader", [](csp::ChannelIn<int> in) { return in(); });
    auto round = [&](int from, int to) {
        for (int i = from; i < to; ++i) {
            csp::Channel<int> wire{"leak-wire"};
            auto [returned, got] = csp::Parallel(child(wire.writer(), i), reader(wire.reader()));
            REQUIRE(returned == i);
            REQUIRE(got == i);
        }
    };
    const char* forks = std::getenv("CSP_TEST_FORKS");  // (for a quick look at the growth)
    const int total = forks ? std::atoi(forks) : 100000;
    round(0, 100);  // warm-up: pools and io helpers are made by now
    const std::size_t warm = csp::runtime::arena_in_use();
    round(100, total);
    const std::size_t after = csp::runtime::arena_in_use();
    INFO("arena in use after 100 children: " << warm << " bytes, after " << total << ": " << after);
    CHECK(after <= warm + 64 * 1024);
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Nesting

// A child runs a Parallel of its own: a fiber stage, a grandchild OS process
// and another fiber stage, wired by channels it makes itself. Values pass
// from this process through all three levels and back, in order.
TEST_CASE("a child runs fibers and a further multiprocess: values pass through every level", "[multiprocess][nested]") {
    constexpr int count = 200;
    csp::Channel<int> down{"to-child"}, up{"from-child"};

    auto child = csp::multiprocess("child", [](csp::ChannelIn<int> from_parent, csp::ChannelOut<int> to_parent) {
        csp::Channel<int> to_grandchild{"to-grandchild"}, from_grandchild{"from-grandchild", csp::buffer(4)};
        auto stage = csp::process("stage", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out, int add) {
            for (;;) out(in() + add);
        });
        auto grandchild = csp::multiprocess("grandchild", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
            int passed = 0;
            try {
                for (;;) {
                    out(in() + 100);
                    ++passed;
                }
            } catch (const csp::ChannelRetireException&) {
            }
            return std::tuple<int, int, int>(static_cast<int>(getpid()), static_cast<int>(getppid()), passed);
        });
        auto [first, below, last] =
            csp::Parallel(stage(std::move(from_parent), to_grandchild.writer(), 1),
                          grandchild(to_grandchild.reader(), from_grandchild.writer()),
                          stage(from_grandchild.reader(), std::move(to_parent), 10));
        (void)first;
        (void)last;
        return std::tuple<int, int, int, int>(static_cast<int>(getpid()), std::get<0>(below), std::get<1>(below),
                                              std::get<2>(below));
    });
    auto feeder = csp::process("feeder", [](csp::ChannelOut<int> out) {
        for (int i = 0; i < count; ++i) out(i);
    });
    std::vector<int> got;
    auto sink = csp::process("sink", [&](csp::ChannelIn<int> in) { got = read_until_retired(in); });
    const auto [child_pid, grandchild_pid, grandchild_parent, passed] =
        std::get<0>(csp::Parallel(child(down.reader(), up.writer()), feeder(down.writer()), sink(up.reader())));

    std::vector<int> expected(count);
    std::iota(expected.begin(), expected.end(), 111);
    CHECK(got == expected);
    CHECK(passed == count);
    CHECK(child_pid != getpid());
    CHECK(grandchild_parent == child_pid);  // the grandchild was forked by the child
    CHECK(grandchild_pid != child_pid);
    CHECK(grandchild_pid != getpid());
    CHECK(unreaped_children() == "");
}

// A grandchild's failure travels up: the child's Parallel throws, which
// fails the child, and this Parallel throws ProcessError whose RemoteError
// carries the grandchild's message and names the process it came from.
TEST_CASE("a grandchild's exception reaches this process through the child", "[multiprocess][nested]") {
    auto child = csp::multiprocess("middle", [] {
        auto grandchild = csp::multiprocess("deep", [] { throw std::out_of_range("deep failure"); });
        csp::Parallel(grandchild());
    });
    std::string process_name, type_name, message;
    int caught = 0;
    try {
        csp::Parallel(child());
    } catch (const csp::ProcessError& error) {
        ++caught;
        process_name = error.process_name();
        try {
            error.rethrow_original();
        } catch (const csp::RemoteError& remote) {
            type_name = remote.type_name();
            message = remote.what();
        } catch (...) {
        }
    }
    CHECK(caught == 1);
    CHECK(process_name == "middle");
    CHECK_THAT(message, Contains("deep failure"));
    CHECK_THAT(message, Contains("'deep'"));
    // What escaped the child's body was its Parallel's ProcessError; naming
    // the grandchild's own type instead would be as good.
    CHECK((type_name == "csp::ProcessError" || type_name == "std::out_of_range"));
    CHECK(unreaped_children() == "");
}

// ===========================================================================
// Channels of types that cannot cross, used only in this process

// Tracked has no serialize function and is not trivially copyable: it cannot
// cross OS processes. Channels of it (and of std::unique_ptr) between fibers
// of this process still compile and work beside a multiprocess, and their
// values are still moved, never copied or serialized.
TEST_CASE("a channel of a type that cannot cross works between fibers beside multiprocesses", "[multiprocess][local]") {
    const int buffer = GENERATE(0, 16);
    CAPTURE(buffer);
    constexpr int count = 200;
    const TrackedCounts before;
    {
        auto tracked = csp_test::make_channel<Tracked>(buffer, "local-tracked");
        auto pointers = csp_test::make_channel<std::unique_ptr<int>>(buffer, "local-unique-ptr");
        auto crossing = csp_test::make_channel<int>(buffer, "crossing");

        auto child = csp::multiprocess("crossing-writer", [](csp::ChannelOut<int> out) {
            for (int i = 0; i < count; ++i) out(i);
        });
        std::vector<int> crossed, tracked_got, pointers_got;
        auto crossing_reader = csp::process("crossing-reader", [&](csp::ChannelIn<int> in) { crossed = read_until_retired(in); });
        auto tracked_writer = csp::process("tracked-writer", [](csp::ChannelOut<Tracked> out) {
            for (int i = 0; i < count; ++i) out(Tracked(i));
        });
        auto tracked_reader = csp::process("tracked-reader", [&](csp::ChannelIn<Tracked> in) {
            try {
                for (;;) tracked_got.push_back(in().value);
            } catch (const csp::ChannelRetireException&) {
            }
        });
        auto pointer_writer = csp::process("pointer-writer", [](csp::ChannelOut<std::unique_ptr<int>> out) {
            for (int i = 0; i < count; ++i) out(std::make_unique<int>(i));
        });
        auto pointer_reader = csp::process("pointer-reader", [&](csp::ChannelIn<std::unique_ptr<int>> in) {
            try {
                for (;;) {
                    auto p = in();
                    pointers_got.push_back(p ? *p : -1);
                }
            } catch (const csp::ChannelRetireException&) {
            }
        });
        csp::Parallel(child(crossing.writer()), crossing_reader(crossing.reader()), tracked_writer(tracked.writer()),
                      tracked_reader(tracked.reader()), pointer_writer(pointers.writer()),
                      pointer_reader(pointers.reader()));

        std::vector<int> expected(count);
        std::iota(expected.begin(), expected.end(), 0);
        CHECK(crossed == expected);
        CHECK(tracked_got == expected);
        CHECK(pointers_got == expected);
    }
    CHECK(Tracked::live == before.live);
    CHECK(Tracked::copies == before.copies);
    CHECK(unreaped_children() == "");
}

// Story: a child that had retired its end of a channel and then crashed
// poisoned that channel anyway (its parent poisoned every channel it had
// been handed), so the other users lost the values it had buffered there.
// Only channels the child still had ends of are poisoned now.
TEST_CASE("a crashed child leaves alone a channel it had retired from", "[multiprocess][poison][crash]") {
    csp::Channel<int> kept{"retired-before-crash", csp::buffer(4)};
    csp::Channel<int> held{"held-at-crash"};
    auto crasher = csp::multiprocess("crasher", [](csp::ChannelOut<int> out, csp::ChannelIn<int> still) {
        for (int i = 1; i <= 3; ++i) out(i);
        out.retire();
        (void)still;  // still held when it dies: that channel is poisoned
        std::raise(SIGKILL);
    });
    std::vector<int> got;
    bool retired = false, held_poisoned = false;
    auto reader = csp::process("after-the-crash", [&](csp::ChannelIn<int> in, csp::ChannelOut<int> other) {
        csp::sleep(300ms);  // the child has long died and been reaped
        try {
            for (;;) got.push_back(in());
        } catch (const csp::ChannelRetireException&) {
            retired = true;
        }
        try {
            other(1);
        } catch (const csp::ChannelPoisonException&) {
            held_poisoned = true;
        }
    });
    CHECK_THROWS_AS(csp::Parallel(crasher(kept.writer(), held.reader()), reader(kept.reader(), held.writer())),
                    csp::ProcessError);
    CHECK(got == std::vector<int>{1, 2, 3});
    CHECK(retired);
    CHECK(held_poisoned);
    CHECK(unreaped_children() == "");
}

TEST_CASE("a pipeline stage may be a csp::multiprocess factory, run in copies", "[multiprocess][pipeline]") {
    auto source = csp::process("source", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 300; ++i) out(i);
    });
    auto tripler = csp::multiprocess("tripler", [](csp::ChannelIn<int> in, csp::ChannelOut<long> out) {
        for (;;) out(3L * in());
    });
    auto summer = csp::process("summer", [](csp::ChannelIn<long> in) {
        long total = 0;
        try {
            for (;;) total += in();
        } catch (const csp::ChannelRetireException&) {
        }
        return total;
    });
    CHECK(csp::pipeline(source, tripler * 3, summer) == 3L * 300 * 301 / 2);
    // Ordered: the copies' outputs in the order of the inputs.
    auto in_order = csp::process("in_order", [](csp::ChannelIn<long> in) {
        long expected = 3, wrong = 0;
        try {
            for (;; expected += 3) wrong += in() != expected;
        } catch (const csp::ChannelRetireException&) {
        }
        return wrong == 0 ? expected - 3 : -wrong;
    });
    CHECK(csp::pipeline(source, csp::ordered(tripler * 3), in_order) == 900);
    CHECK(csp_test::unreaped_children() == "");
}
