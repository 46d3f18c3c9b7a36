// The channel conformance suite: the same scenarios in every placement
// (fibers on CSP_THREADS workers; plain threads, forked OS processes, or
// fibers and OS processes by turns with CSP_TEST_PLACEMENT) and for buffer
// sizes 0 (unbuffered), 1 and 16. tests/meson.build registers this
// executable once per placement; nothing here is copied per variant.
//
// Every body captures its channel ends by value and reports what it saw in
// its Seen (support.hpp), so the same body runs as a fiber, on a thread or in
// a child OS process; the test asserts on main once the network has ended.
// Scenarios that count objects run with Tracked in one OS process and with
// int and std::string across OS processes (with_each_value_type, support.hpp
// says why).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include <unistd.h>

using namespace std::chrono_literals;
using csp_test::Body;
using csp_test::Ending;
using csp_test::id_of;
using csp_test::make_value;
using csp_test::Seen;
using csp_test::Tracked;
using csp_test::TrackedCounts;

namespace {

struct Topology {
    const char* name;
    int writers;
    int readers;
};

constexpr Topology topologies[] = {
    {"one2one", 1, 1},
    {"any2one", 4, 1},
    {"one2any", 1, 4},
    {"any2any", 4, 4},
};

enum class Termination { retire, poison_by_reader, poison_by_writer };

const char* name_of(Termination termination) {
    switch (termination) {
        case Termination::retire: return "retire";
        case Termination::poison_by_reader: return "poison by a reader";
        case Termination::poison_by_writer: return "poison by a writer";
    }
    return "?";
}

// 0, 1, ..., n - 1.
std::vector<int> ids_up_to(int n) {
    std::vector<int> ids(n);
    std::iota(ids.begin(), ids.end(), 0);
    return ids;
}

// in_writer_order(values, per_writer): one reader's ids, where writer w wrote
// w * per_writer ... in increasing order; true when the reader saw each
// writer's ids in the order written.
bool in_writer_order(const std::vector<int>& values, int per_writer) {
    std::map<int, int> last_of_writer;
    for (int id : values) {
        auto [last, first] = last_of_writer.try_emplace(id / per_writer, id);
        if (!first && id <= last->second) return false;
        last->second = id;
    }
    return true;
}

// wait_until_gone(in): returns once every writer end of in's channel has
// left. Nobody writes on it: a body holds such an end only to say, by its
// leaving when the body ends, that the body has ended.
void wait_until_gone(csp::ChannelIn<int>& in) {
    try {
        for (;;) in();
    } catch (const csp::ChannelRetireException&) {
    }
}

// with_each_value_type(scenario): scenario.template operator()<T>() for the
// value types of this placement (support.hpp's make_value says why): Tracked
// in one OS process, and then every Tracked made has been destroyed (no
// leak, none destroyed twice) and none was copied; int and std::string
// across OS processes.
template <class Scenario>
void with_each_value_type(Scenario&& scenario) {
    if (csp_test::in_one_os_process()) {
        INFO("values: Tracked");
        const TrackedCounts before;
        scenario.template operator()<Tracked>();
        CHECK(Tracked::live == before.live);
        CHECK(Tracked::copies == before.copies);
    } else {
        {
            INFO("values: int");
            scenario.template operator()<int>();
        }
        INFO("values: std::string");
        scenario.template operator()<std::string>();
    }
}

}  // namespace

// The placement is what it says: every body in a child OS process of its own
// for os_processes, every other one for mixed (the first one there), none
// for fibers and threads.
TEST_CASE("every body runs where the placement puts it", "[conformance][placement]") {
    std::vector<Body> bodies(6, Body([](Seen&) {}));
    const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));

    // 'c' for a body that ran in a child OS process of its own, 'f' for one
    // that ran in this one.
    std::string where;
    std::vector<int> children;
    for (const Seen& body : seen) {
        CHECK(body.ending == Ending::normally);
        where += body.os_process == static_cast<int>(getpid()) ? 'f' : 'c';
        if (where.back() == 'c') children.push_back(body.os_process);
    }
    switch (csp_test::placement()) {
        case csp_test::Placement::os_processes: CHECK(where == "cccccc"); break;
        case csp_test::Placement::mixed: CHECK(where == "cfcfcf"); break;
        case csp_test::Placement::ranks: {
            // ('c' here: the body ran on another rank, body i on rank i % ranks.)
            std::string expected;
            for (int i = 0; i < 6; ++i) expected += i % csp_test::rank_count() == csp_test::this_rank() ? 'f' : 'c';
            CHECK(where == expected);
            return;
        }
        default: CHECK(where == "ffffff"); break;
    }
    std::sort(children.begin(), children.end());
    CHECK(std::adjacent_find(children.begin(), children.end()) == children.end());  // one child each
    CHECK(csp_test::unreaped_children() == "");
}

// A body that records into the test's variables by reference would record
// into a child's copy of them: run_network refuses it where bodies may run
// in children, before anything runs.
TEST_CASE("a body that records by reference runs only in one OS process", "[conformance][placement]") {
    int runs = 0;
    std::vector<Body> bodies;
    bodies.push_back([&runs] { ++runs; });
    if (csp_test::in_one_os_process()) {
        CHECK_NOTHROW(csp_test::run_network(std::move(bodies)));
        CHECK(runs == 1);
    } else {
        CHECK_THROWS_AS(csp_test::run_network(std::move(bodies)), std::logic_error);
        CHECK(runs == 0);
    }
}

// The PyCSP matrix. Writers send distinct values; readers report the ids they
// got. Every value written must be read exactly once, each reader must see
// each writer's values in the order written, every body must end the way the
// termination says, and (Tracked) no object may be left alive and none may
// have been copied (values are moved from writer to reader).
//
// Termination by poison stays exact: every reader notes each value it read
// on `reads`, and the counter, once it has counted every value, poisons
// (or, for "poison by a writer", hands a token on `stop` to a writer, which
// poisons), so poison never discards a value that was written. A shared
// counter would not do: readers may be OS processes of their own.
TEST_CASE("every value written is read exactly once", "[conformance][matrix]") {
    const int buffer = GENERATE(0, 1, 16);
    const Topology topology = topologies[GENERATE(0, 1, 2, 3)];
    const Termination termination =
        GENERATE(Termination::retire, Termination::poison_by_reader, Termination::poison_by_writer);
    CAPTURE(csp_test::placement_name(), buffer, topology.name, name_of(termination));

    constexpr int per_writer = 300;
    const int total = topology.writers * per_writer;
    const bool by_poison = termination != Termination::retire;
    with_each_value_type([&]<class T>() {
        auto data = csp_test::make_channel<T>(buffer, "data");
        csp::Channel<int> stop{"stop"};
        csp::Channel<int> reads{"reads"};

        std::vector<Body> bodies;
        for (int w = 0; w < topology.writers; ++w) {
            bodies.push_back([w, by_poison, out = data.writer(), stop_in = stop.reader()](Seen& seen) mutable {
                for (int i = 0; i < per_writer; ++i) {
                    out(make_value<T>(w * per_writer + i));
                    ++seen.count;
                }
                if (!by_poison) {
                    out.retire();
                    return;
                }
                // Every value has been read when the token comes (poison by
                // a writer) or stop is poisoned (by a reader).
                stop_in();
                // stop first, for the mirror reason of the counter's
                // order: poisoning data first would end the readers
                // and then the counter, and its stop end leaving would
                // retire stop under the waiting writers.
                stop_in.poison();
                out.poison();
                stop_in();
            });
        }
        for (int r = 0; r < topology.readers; ++r) {
            bodies.push_back([by_poison, in = data.reader(), note = reads.writer()](Seen& seen) mutable {
                for (;;) {
                    T value = in();
                    seen.values.push_back(id_of(value));
                    if (by_poison) note(1);
                }
            });
        }
        if (by_poison) {
            bodies.push_back([termination, total, notes = reads.reader(), in = data.reader(),
                              stop_out = stop.writer()](Seen& seen) mutable {
                for (; seen.count < total; ++seen.count) notes();
                if (termination == Termination::poison_by_reader) {
                    // data first: the writers waiting on stop still hold
                    // data's writer ends, so data cannot retire under
                    // the readers (and this end keeps stop open).
                    in.poison();
                    stop_out.poison();
                } else {
                    stop_out(1);
                    // Keep stop open until the writer with the token has
                    // poisoned it: here until the readers, poisoned after
                    // that, have gone (reads retires).
                    notes();
                }
            });
        }
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));

        std::vector<int> all;
        for (int r = 0; r < topology.readers; ++r) {
            const Seen& reader = seen[topology.writers + r];
            CAPTURE(r);
            CHECK(in_writer_order(reader.values, per_writer));
            all.insert(all.end(), reader.values.begin(), reader.values.end());
            CHECK(reader.ending == (by_poison ? Ending::poisoned : Ending::retired));
        }
        std::sort(all.begin(), all.end());
        CHECK(all.size() == static_cast<std::size_t>(total));
        CHECK(all == ids_up_to(total));

        for (int w = 0; w < topology.writers; ++w) {
            CAPTURE(w);
            CHECK(seen[w].count == per_writer);
            CHECK(seen[w].ending == (by_poison ? Ending::poisoned : Ending::normally));
        }
        if (by_poison) {
            const Seen& counter = seen.back();
            CHECK(counter.count == total);
            CHECK(counter.ending ==
                  (termination == Termination::poison_by_reader ? Ending::normally : Ending::retired));
        }
    });
    CHECK(csp_test::unreaped_children() == "");
}

// Every end and every copy of an end counts: retiring one writer end, while a
// copy of it is still in, must not wake the blocked reader; only the last one.
// Each body notes the time it left or woke (comparable across OS processes).
TEST_CASE("a blocked reader sees retire only when the last writer end leaves", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    auto channel = csp_test::make_channel<int>(buffer, "retire-count");

    auto writer = channel.writer();
    const auto leave_after = [](csp::ChannelOut<int> out, std::chrono::milliseconds wait) {
        return [out, wait](Seen& seen) mutable {
            csp::sleep(wait);
            seen.note_time();
            out.retire();
        };
    };
    std::vector<Body> bodies;
    bodies.push_back([in = channel.reader()](Seen& seen) mutable {
        try {
            seen.values.push_back(in());
        } catch (...) {
            seen.note_time();  // when it woke
            throw;
        }
    });
    bodies.push_back(leave_after(writer, 30ms));
    bodies.push_back(leave_after(writer, 90ms));
    writer.retire();  // the two copies above are still in
    const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
    const Seen &reader = seen[0], &first = seen[1], &second = seen[2];

    CHECK(reader.ending == Ending::retired);
    CHECK(reader.values.empty());
    CHECK(first.noted_at < second.noted_at);
    CHECK(reader.noted_at > second.noted_at);
    CHECK(csp_test::unreaped_children() == "");
}

// The mirror image: a writer blocked on a full (or unbuffered) channel sees
// retire only when the last reader end leaves, and exactly `buffer` writes
// completed before that. A write begun after both readers' bodies have ended
// (its writer's end was in all along) throws retire at once.
TEST_CASE("a blocked writer sees retire only when the last reader end leaves", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    auto channel = csp_test::make_channel<int>(buffer, "retire-count-readers");

    auto reader = channel.reader();
    csp::Channel<int> readers_gone{"readers-gone"};
    const auto leave_after = [&readers_gone](csp::ChannelIn<int> in, std::chrono::milliseconds wait) {
        return [in, wait, gone = readers_gone.writer()](Seen& seen) mutable {
            csp::sleep(wait);
            seen.note_time();
            in.retire();
        };
    };
    std::vector<Body> bodies;
    bodies.push_back([out = channel.writer()](Seen& seen) mutable {
        try {
            for (;;) {
                out(seen.count);
                ++seen.count;
            }
        } catch (...) {
            seen.note_time();  // when it woke
            throw;
        }
    });
    bodies.push_back(leave_after(reader, 30ms));
    bodies.push_back(leave_after(reader, 90ms));
    bodies.push_back([out = channel.writer(), gone = readers_gone.reader()](Seen& seen) mutable {
        wait_until_gone(gone);
        out(-1);
        ++seen.count;
    });
    reader.retire();
    const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
    const Seen &writer = seen[0], &first = seen[1], &second = seen[2], &late = seen[3];

    CHECK(writer.ending == Ending::retired);
    CHECK(first.noted_at < second.noted_at);
    CHECK(writer.noted_at > second.noted_at);
    CHECK(writer.count == buffer);
    CHECK(late.ending == Ending::retired);
    CHECK(late.count == 0);
    CHECK(csp_test::unreaped_children() == "");
}

// Readers of a buffered channel whose writers all left first drain the buffer,
// in FIFO order, then see retire. The writer leaves either by retire() or by
// ending (its end is destroyed with the body); a buffer's values outlive the
// body, and the OS process, that wrote them.
TEST_CASE("readers drain the buffer before they see retire", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    const bool explicit_retire = GENERATE(true, false);
    CAPTURE(csp_test::placement_name(), buffer, explicit_retire);
    constexpr int count = 10;
    with_each_value_type([&]<class T>() {
        auto channel = csp_test::make_channel<T>(buffer, "drain");
        std::vector<Body> bodies;
        csp::Channel<int> writer_gone{"writer-gone"};
        bodies.push_back([explicit_retire, out = channel.writer(), gone = writer_gone.writer()](Seen& seen) mutable {
            for (; seen.count < count; ++seen.count) out(make_value<T>(seen.count));
            if (explicit_retire) out.retire();
        });
        bodies.push_back([buffer, in = channel.reader(), gone = writer_gone.reader()](Seen& seen) mutable {
            // Let the writer fill the buffer and leave first: when the
            // buffer holds every value, wait until its body has ended.
            if (buffer >= count)
                wait_until_gone(gone);
            else
                csp::sleep(40ms);
            for (;;) seen.values.push_back(id_of(in()));
        });
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));

        CHECK(seen[0].ending == Ending::normally);
        CHECK(seen[0].count == count);
        CHECK(seen[1].values == ids_up_to(count));
        CHECK(seen[1].ending == Ending::retired);
    });
    CHECK(csp_test::unreaped_children() == "");
}

// Poison reaches both sides at once: blocked readers (empty channel) and
// blocked writers (full or unbuffered channel) all wake with poison, whether
// a reader end, a writer end, the channel handle or csp::poison() poisons.
// The poisoner's own next operation throws poison, and so do a read and a
// write begun once the poisoner's body has ended.
TEST_CASE("poison wakes every blocked reader and every blocked writer", "[conformance][poison]") {
    enum Poisoner { by_reader_end, by_writer_end, by_channel, by_free_function };
    const int buffer = GENERATE(0, 1, 16);
    const bool block_writers = GENERATE(false, true);
    const int poisoner = GENERATE(by_reader_end, by_writer_end, by_channel, by_free_function);
    // The poisoner runs first or second: with mixed, in a child or a fiber.
    // Elsewhere every body runs alike and the second would repeat the first.
    const bool poisoner_second = GENERATE(false, true);
    if (poisoner_second && csp_test::placement() != csp_test::Placement::mixed) return;
    CAPTURE(csp_test::placement_name(), buffer, block_writers, poisoner, poisoner_second);

    constexpr int blocked = 3;
    auto channel = csp_test::make_channel<int>(buffer, "poisoned");
    // A late body first waits for the poisoner's body to end.
    csp::Channel<int> poisoner_gone{"poisoner-gone"};
    const auto reader = [&poisoner_gone](csp::ChannelIn<int> in, bool late) {
        return [in, late, gone = poisoner_gone.reader()](Seen& seen) mutable {
            if (late) wait_until_gone(gone);
            for (;;) seen.values.push_back(in());
        };
    };
    const auto writer = [&poisoner_gone](csp::ChannelOut<int> out, bool late) {
        return [out, late, gone = poisoner_gone.reader()](Seen& seen) mutable {
            if (late) wait_until_gone(gone);
            for (;; ++seen.count) out(seen.count);
        };
    };

    std::vector<Body> bodies;
    // The poisoner holds an end of each side, so neither side can retire.
    bodies.push_back([poisoner, block_writers, in = channel.reader(), out = channel.writer(), channel,
                      gone = poisoner_gone.writer()](Seen&) mutable {
        csp::sleep(50ms);  // let the others block first
        switch (poisoner) {
            case by_reader_end: in.poison(); break;
            case by_writer_end: out.poison(); break;
            case by_channel: channel.poison(); break;
            default: csp::poison(in); break;
        }
        if (block_writers)
            in();
        else
            out(1);
    });
    for (int i = 0; i < blocked; ++i) {
        if (block_writers)
            bodies.push_back(writer(channel.writer(), false));
        else
            bodies.push_back(reader(channel.reader(), false));
    }
    bodies.push_back(reader(channel.reader(), true));
    bodies.push_back(writer(channel.writer(), true));
    if (poisoner_second) std::swap(bodies[0], bodies[1]);
    std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
    if (poisoner_second) std::swap(seen[0], seen[1]);

    CHECK(seen[0].ending == Ending::poisoned);
    int written = 0;
    for (int i = 1; i <= blocked; ++i) {
        CAPTURE(i);
        CHECK(seen[i].ending == Ending::poisoned);
        CHECK(seen[i].values.empty());
        written += seen[i].count;
    }
    // Blocked writers had filled the buffer together; poison discarded it.
    CHECK(written == (block_writers ? buffer : 0));
    const Seen &late_reader = seen[blocked + 1], &late_writer = seen[blocked + 2];
    CHECK(late_reader.ending == Ending::poisoned);
    CHECK(late_reader.values.empty());
    CHECK(late_writer.ending == Ending::poisoned);
    CHECK(late_writer.count == 0);
    CHECK(csp_test::unreaped_children() == "");
}

// A move-only type crosses every kind of channel (std::unique_ptr crosses OS
// processes too: cereal serializes what it points at).
TEST_CASE("a move-only value type crosses a channel", "[conformance][values]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int count = 100;
    auto channel = csp_test::make_channel<std::unique_ptr<int>>(buffer, "move-only");
    std::vector<Body> bodies;
    bodies.push_back([out = channel.writer()](Seen&) mutable {
        for (int i = 0; i < count; ++i) out(std::make_unique<int>(i));
        out.retire();
    });
    bodies.push_back([in = channel.reader()](Seen& seen) mutable {
        for (;;) {
            std::unique_ptr<int> value = in();
            seen.values.push_back(value ? *value : -1);
        }
    });
    const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));

    CHECK(seen[1].values == ids_up_to(count));
    CHECK(seen[1].ending == Ending::retired);
    CHECK(csp_test::unreaped_children() == "");
}

// read() and write() are the named forms of in() and out(v); an lvalue moved
// with write(std::move(v)) arrives without a copy.
TEST_CASE("read and write are the named forms of the call operators", "[conformance][values]") {
    const int buffer = GENERATE(0, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int count = 20;
    with_each_value_type([&]<class T>() {
        auto channel = csp_test::make_channel<T>(buffer, "named-forms");
        std::vector<Body> bodies;
        bodies.push_back([out = channel.writer()](Seen&) mutable {
            for (int i = 0; i < count; ++i) {
                T value = make_value<T>(i);
                out.write(std::move(value));
            }
        });
        bodies.push_back([in = channel.reader()](Seen& seen) mutable {
            for (;;) seen.values.push_back(id_of(in.read()));
        });
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
        CHECK(seen[1].values == ids_up_to(count));
    });
    CHECK(csp_test::unreaped_children() == "");
}

// Buffer kinds (API.md): a write to an infinite, overwriting or dropping
// buffer never waits, an output guard on one is ready, and a reader that
// comes after every write gets what the kind kept: everything, the newest
// n, or the oldest n. What was dropped was destroyed once (Tracked).
TEST_CASE("a write to an infinite, overwriting or dropping buffer never waits; a late reader gets what it kept",
          "[conformance][buffer-kinds]") {
    constexpr int n = 100, kept = 4;
    const int kind = GENERATE(0, 1, 2);
    const char* kinds[] = {"infinite", "overwriting", "dropping"};
    CAPTURE(csp_test::placement_name(), kinds[kind]);
    const csp::Buffer buffer = kind == 0   ? csp::infinite_buffer()
                               : kind == 1 ? csp::overwriting_buffer(kept)
                                           : csp::dropping_buffer(kept);
    with_each_value_type([&]<class T>() {
        csp::Channel<T> data{"kinds", buffer};
        csp::Channel<int> go{"kinds-go"};
        std::vector<Body> bodies;
        bodies.push_back([out = data.writer(), go_out = go.writer()](Seen& seen) mutable {
            for (int i = 0; i < n; ++i) {
                if (i % 2 == 0) {
                    out(make_value<T>(i));
                } else if (csp::PriSelect(csp::OutputGuard(out, make_value<T>(i)), csp::SkipGuard()).index() != 0) {
                    seen.values.push_back(i);  // (the output guard was not ready)
                }
                ++seen.count;
            }
            go_out(1);  // every write is done before anything is read
        });
        bodies.push_back([in = data.reader(), go_in = go.reader()](Seen& seen) mutable {
            go_in();
            for (;;) seen.values.push_back(id_of(in()));
        });
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
        CHECK(seen[0].count == n);
        CHECK(seen[0].values.empty());
        std::vector<int> expected;
        for (int i = 0; i < n; ++i) {
            if (kind == 0 || (kind == 1 && i >= n - kept) || (kind == 2 && i < kept)) expected.push_back(i);
        }
        CHECK(seen[1].values == expected);
        CHECK(seen[1].ending == Ending::retired);
    });
    CHECK(csp_test::unreaped_children() == "");
}

// Any-to-any on a never-waiting kind: nothing read twice or invented, the
// writers never wait, and an infinite buffer loses nothing.
TEST_CASE("writers and readers on every buffer kind: each value read at most once, none invented",
          "[conformance][buffer-kinds]") {
    constexpr int writers = 3, readers = 2, per_writer = 200;
    const int kind = GENERATE(0, 1, 2);
    const char* kinds[] = {"infinite", "overwriting", "dropping"};
    CAPTURE(csp_test::placement_name(), kinds[kind]);
    const csp::Buffer buffer = kind == 0   ? csp::infinite_buffer()
                               : kind == 1 ? csp::overwriting_buffer(2)
                                           : csp::dropping_buffer(2);
    with_each_value_type([&]<class T>() {
        csp::Channel<T> data{"kinds-any", buffer};
        std::vector<Body> bodies;
        for (int w = 0; w < writers; ++w) {
            bodies.push_back([w, out = data.writer()](Seen& seen) mutable {
                for (int i = 0; i < per_writer; ++i, ++seen.count) out(make_value<T>(w * per_writer + i));
            });
        }
        for (int r = 0; r < readers; ++r) {
            bodies.push_back([in = data.reader()](Seen& seen) mutable {
                for (;;) seen.values.push_back(id_of(in()));
            });
        }
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
        std::vector<int> all;
        for (int r = 0; r < readers; ++r) {
            const Seen& reader = seen[writers + r];
            CHECK(in_writer_order(reader.values, per_writer));
            CHECK(reader.ending == Ending::retired);
            all.insert(all.end(), reader.values.begin(), reader.values.end());
        }
        std::sort(all.begin(), all.end());
        CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // none twice
        CHECK((all.empty() || (all.front() >= 0 && all.back() < writers * per_writer)));  // none invented
        if (kind == 0) CHECK(all == ids_up_to(writers * per_writer));
        for (int w = 0; w < writers; ++w) CHECK(seen[w].count == per_writer);
    });
}

// Extended rendezvous: readers that take each value by a plain read, an
// extended_read or an ExtendedInputGuard by turns, any to any. Every value is
// read exactly once, and on an unbuffered channel a writer's write returns
// only after the action on its value has ended: both are told to an observer
// over an unbuffered channel (the action's note completes before the action
// returns, the writer's after its write returned), so the observer's order
// is the order of the two events, in every placement.
TEST_CASE("an extended read's writer completes only when the action has ended", "[conformance][extended]") {
    if (csp_test::rank_count() > 1) {
        SUCCEED("extended reads of channels shared by ranks are not supported yet");
        return;
    }
    const int buffer = GENERATE(0, 1, 16);
    const Topology topology = topologies[GENERATE(0, 1, 2, 3)];
    CAPTURE(csp_test::placement_name(), buffer, topology.name);
    constexpr int per_writer = 60;
    const int total = topology.writers * per_writer;
    with_each_value_type([&]<class T>() {
        auto data = csp_test::make_channel<T>(buffer, "extended-data");
        csp::Channel<int> notes{"extended-notes"};
        csp::Channel<int> never{"extended-never"};  // (its writer ends are the writers': never ready)
        std::vector<Body> bodies;
        for (int w = 0; w < topology.writers; ++w) {
            bodies.push_back([w, out = data.writer(), note = notes.writer(), keep = never.writer()](Seen& seen) mutable {
                for (int i = 0; i < per_writer; ++i, ++seen.count) {
                    const int id = w * per_writer + i;
                    out(make_value<T>(id));
                    note(2 * id + 1);  // its write returned
                }
            });
        }
        for (int r = 0; r < topology.readers; ++r) {
            bodies.push_back([r, in = data.reader(), note = notes.writer(), quiet = never.reader()](Seen& seen) mutable {
                const auto action = [&](const T& value) {
                    note(2 * id_of(value));  // the action ends after this
                    return id_of(value);
                };
                for (int k = r;; ++k) {
                    switch (k % 3) {
                        case 0: seen.values.push_back(2 * id_of(in()) + 1); break;  // plain
                        case 1: seen.values.push_back(2 * in.extended_read(action)); break;
                        default: {
                            auto got = csp::PriSelect(csp::InputGuard(quiet), csp::ExtendedInputGuard(in, action));
                            if (got.index() != 1) throw std::logic_error("a never-ready guard fired");
                            seen.values.push_back(2 * id_of(std::get<1>(got)));
                        }
                    }
                }
            });
        }
        bodies.push_back([in = notes.reader()](Seen& seen) mutable {
            for (;;) seen.values.push_back(in());
        });
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
        std::vector<int> all;
        std::vector<int> extended;  // ids read by an extended read or guard
        for (int r = 0; r < topology.readers; ++r) {
            const Seen& reader = seen[topology.writers + r];
            CHECK(reader.ending == Ending::retired);
            for (int v : reader.values) {
                all.push_back(v / 2);
                if (v % 2 == 0) extended.push_back(v / 2);
            }
        }
        std::sort(all.begin(), all.end());
        CHECK(all == ids_up_to(total));
        CHECK_FALSE(extended.empty());
        const Seen& observer = seen.back();
        CHECK(observer.ending == Ending::retired);
        std::vector<int> action_at(total, -1), returned_at(total, -1);
        for (int k = 0; k < static_cast<int>(observer.values.size()); ++k) {
            const int v = observer.values[k];
            (v % 2 ? returned_at : action_at)[v / 2] = k;
        }
        int out_of_order = 0;
        for (int id : extended) {
            CHECK(action_at[id] >= 0);
            CHECK(returned_at[id] >= 0);
            if (buffer == 0 && action_at[id] > returned_at[id]) ++out_of_order;
        }
        CHECK(out_of_order == 0);
        for (int w = 0; w < topology.writers; ++w) CHECK(seen[w].count == per_writer);
    });
    CHECK(csp_test::unreaped_children() == "");
}

// An action that throws poisons the channel: the writer waiting for it gets
// ChannelPoisonException, not a completed write, and nothing else is lost.
TEST_CASE("an extended read whose action throws poisons its waiting writer", "[conformance][extended]") {
    if (csp_test::rank_count() > 1) {
        SUCCEED("extended reads of channels shared by ranks are not supported yet");
        return;
    }
    const int buffer = GENERATE(0, 1);
    const bool guard = GENERATE(false, true);
    CAPTURE(csp_test::placement_name(), buffer, guard);
    static constexpr int fail_at = 5;
    with_each_value_type([&]<class T>() {
        auto data = csp_test::make_channel<T>(buffer, "extended-throw");
        std::vector<Body> bodies;
        bodies.push_back([out = data.writer()](Seen& seen) mutable {
            for (int i = 0;; ++i, ++seen.count) out(make_value<T>(i));
        });
        bodies.push_back([guard, in = data.reader()](Seen& seen) mutable {
            const auto action = [&](const T& value) {
                if (id_of(value) == fail_at) throw std::runtime_error("the action failed");
                seen.values.push_back(id_of(value));
            };
            try {
                for (;;) {
                    if (guard) csp::Alternation(csp::ExtendedInputGuard(in, action)).execute();
                    else in.extended_read(action);
                }
            } catch (const std::runtime_error&) {
                seen.count = -1;  // the action's exception came out of the read
                in.read();        // and the channel is poisoned
            }
        });
        const std::vector<Seen> seen = csp_test::run_network(std::move(bodies));
        CHECK(seen[1].values == ids_up_to(fail_at));
        CHECK(seen[1].count == -1);
        CHECK(seen[1].ending == Ending::poisoned);
        CHECK(seen[0].ending == Ending::poisoned);
        // Unbuffered: the write of fail_at never completed. Buffered: it
        // was buffered (completed), and the next one found the poison.
        CHECK(seen[0].count == fail_at + buffer);
    });
    CHECK(csp_test::unreaped_children() == "");
}
