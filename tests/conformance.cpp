// The channel conformance suite: the same scenarios in every placement (fibers
// on CSP_THREADS workers, or plain threads with CSP_TEST_PLACEMENT=threads)
// and for buffer sizes 0 (unbuffered), 1 and 16. tests/meson.build registers
// this executable once per placement; nothing here is copied per variant.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <numeric>

using namespace std::chrono_literals;
using csp_test::Body;
using csp_test::Ending;
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

}  // namespace

// The PyCSP matrix. Writers send distinct Tracked values; readers record what
// they get. Every value written must be read exactly once, every reader and
// writer must end the way the termination says, no Tracked object may be left
// alive and none may have been copied (values are moved from writer to reader).
//
// Termination by poison stays exact: the reader that reads the last value
// poisons (or, for "poison by a writer", hands a token on `stop` to a writer,
// which poisons), so poison never discards a value that was written.
TEST_CASE("every value written is read exactly once", "[conformance][matrix]") {
    const int buffer = GENERATE(0, 1, 16);
    const Topology topology = topologies[GENERATE(0, 1, 2, 3)];
    const Termination termination =
        GENERATE(Termination::retire, Termination::poison_by_reader, Termination::poison_by_writer);
    CAPTURE(csp_test::placement_name(), buffer, topology.name, name_of(termination));

    constexpr int per_writer = 300;
    const int total = topology.writers * per_writer;
    const TrackedCounts before;
    {
        auto data = csp_test::make_channel<Tracked>(buffer, "data");
        csp::Channel<int> stop{"stop"};
        std::vector<std::vector<int>> received(topology.readers);
        std::atomic<int> read_count{0};
        std::atomic<int> readers_retired{0}, readers_poisoned{0}, writers_poisoned{0};

        std::vector<Body> bodies;
        for (int w = 0; w < topology.writers; ++w) {
            bodies.push_back([&, w, out = data.writer(), stop_in = stop.reader()]() mutable {
                for (int i = 0; i < per_writer; ++i) out(Tracked(w * per_writer + i));
                if (termination == Termination::retire) {
                    out.retire();
                    return;
                }
                try {
                    stop_in();  // the token: every value has been read
                    // stop first, for the mirror reason: poisoning data
                    // first would end the readers, and their stop ends
                    // leaving would retire stop under the waiting writers.
                    stop_in.poison();
                    out.poison();
                    stop_in();
                } catch (const csp::ChannelPoisonException&) {
                    ++writers_poisoned;
                }
            });
        }
        for (int r = 0; r < topology.readers; ++r) {
            bodies.push_back([&, r, in = data.reader(), stop_out = stop.writer()]() mutable {
                try {
                    for (;;) {
                        Tracked value = in();
                        received[r].push_back(value.value);
                        if (++read_count != total || termination == Termination::retire) continue;
                        if (termination == Termination::poison_by_reader) {
                            // data first: the writers waiting on stop
                            // still hold data's writer ends, so data cannot
                            // retire under the other readers (and this
                            // reader's own stop end keeps stop open).
                            in.poison();
                            stop_out.poison();
                        } else {
                            stop_out(1);
                        }
                    }
                } catch (const csp::ChannelRetireException&) {
                    ++readers_retired;
                } catch (const csp::ChannelPoisonException&) {
                    ++readers_poisoned;
                }
            });
        }
        csp_test::run_network(std::move(bodies));

        std::vector<int> all;
        for (const auto& one_reader : received) all.insert(all.end(), one_reader.begin(), one_reader.end());
        std::sort(all.begin(), all.end());
        std::vector<int> expected(total);
        std::iota(expected.begin(), expected.end(), 0);
        CHECK(all.size() == expected.size());
        CHECK(all == expected);

        if (termination == Termination::retire) {
            CHECK(readers_retired == topology.readers);
            CHECK(readers_poisoned == 0);
        } else {
            CHECK(readers_poisoned == topology.readers);
            CHECK(readers_retired == 0);
            CHECK(writers_poisoned == topology.writers);
        }
    }
    CHECK(Tracked::live == before.live);
    CHECK(Tracked::copies == before.copies);
}

// Every end and every copy of an end counts: retiring one writer end, while a
// copy of it is still in, must not wake the blocked reader; only the last one.
TEST_CASE("a blocked reader sees retire only when the last writer end leaves", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    auto channel = csp_test::make_channel<int>(buffer, "retire-count");
    std::atomic<int> clock{0};
    int first_left = 0, second_left = 0, reader_woke = 0;
    Ending reader_ending = Ending::running;

    auto writer = channel.writer();
    std::vector<Body> bodies;
    bodies.push_back([&, in = channel.reader()]() mutable {
        try {
            in();
            reader_ending = Ending::normally;
        } catch (const csp::ChannelRetireException&) {
            reader_woke = ++clock;
            reader_ending = Ending::retired;
        } catch (const csp::ChannelPoisonException&) {
            reader_ending = Ending::poisoned;
        }
    });
    bodies.push_back([&, out = writer]() mutable {
        csp::sleep(30ms);
        first_left = ++clock;
        out.retire();
    });
    bodies.push_back([&, out = writer]() mutable {
        csp::sleep(90ms);
        second_left = ++clock;
        out.retire();
    });
    writer.retire();  // the two copies above are still in
    csp_test::run_network(std::move(bodies));

    CHECK(reader_ending == Ending::retired);
    CHECK(first_left < second_left);
    CHECK(reader_woke > second_left);
}

// The mirror image: a writer blocked on a full (or unbuffered) channel sees
// retire only when the last reader end leaves, and exactly `buffer` writes
// completed before that.
TEST_CASE("a blocked writer sees retire only when the last reader end leaves", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    auto channel = csp_test::make_channel<int>(buffer, "retire-count-readers");
    std::atomic<int> clock{0};
    int first_left = 0, second_left = 0, writer_woke = 0, written = 0;
    Ending writer_ending = Ending::running;

    auto reader = channel.reader();
    std::vector<Body> bodies;
    bodies.push_back([&, out = channel.writer()]() mutable {
        try {
            for (;;) {
                out(written);
                ++written;
            }
        } catch (const csp::ChannelRetireException&) {
            writer_woke = ++clock;
            writer_ending = Ending::retired;
        } catch (const csp::ChannelPoisonException&) {
            writer_ending = Ending::poisoned;
        }
    });
    bodies.push_back([&, in = reader]() mutable {
        csp::sleep(30ms);
        first_left = ++clock;
        in.retire();
    });
    bodies.push_back([&, in = reader]() mutable {
        csp::sleep(90ms);
        second_left = ++clock;
        in.retire();
    });
    reader.retire();
    csp_test::run_network(std::move(bodies));

    CHECK(writer_ending == Ending::retired);
    CHECK(writer_woke > second_left);
    CHECK(written == buffer);
}

// Readers of a buffered channel whose writers all left first drain the buffer,
// in FIFO order, then see retire. The writer leaves either by retire() or by
// ending (its end is destroyed with the body).
TEST_CASE("readers drain the buffer before they see retire", "[conformance][retire]") {
    const int buffer = GENERATE(0, 1, 16);
    const bool explicit_retire = GENERATE(true, false);
    CAPTURE(csp_test::placement_name(), buffer, explicit_retire);
    constexpr int count = 10;
    const TrackedCounts before;
    {
        auto channel = csp_test::make_channel<Tracked>(buffer, "drain");
        std::vector<int> got;
        Ending reader_ending = Ending::running;
        std::vector<Body> bodies;
        bodies.push_back([&, out = channel.writer()]() mutable {
            for (int i = 0; i < count; ++i) out(Tracked(i));
            if (explicit_retire) out.retire();
        });
        bodies.push_back([&, in = channel.reader()]() mutable {
            csp::sleep(40ms);  // let the writer fill the buffer and leave first
            try {
                for (;;) got.push_back(in().value);
            } catch (const csp::ChannelRetireException&) {
                reader_ending = Ending::retired;
            } catch (const csp::ChannelPoisonException&) {
                reader_ending = Ending::poisoned;
            }
        });
        csp_test::run_network(std::move(bodies));

        std::vector<int> expected(count);
        std::iota(expected.begin(), expected.end(), 0);
        CHECK(got == expected);
        CHECK(reader_ending == Ending::retired);
    }
    CHECK(Tracked::live == before.live);
}

// Poison reaches both sides at once: blocked readers (empty channel) and
// blocked writers (full or unbuffered channel) all wake with poison, whether
// a reader end, a writer end, the channel handle or csp::poison() poisons.
TEST_CASE("poison wakes every blocked reader and every blocked writer", "[conformance][poison]") {
    enum Poisoner { by_reader_end, by_writer_end, by_channel, by_free_function };
    const int buffer = GENERATE(0, 1, 16);
    const bool block_writers = GENERATE(false, true);
    const int poisoner = GENERATE(by_reader_end, by_writer_end, by_channel, by_free_function);
    CAPTURE(csp_test::placement_name(), buffer, block_writers, poisoner);

    constexpr int blocked = 3;
    auto channel = csp_test::make_channel<int>(buffer, "poisoned");
    std::atomic<int> poisoned{0}, ended_otherwise{0};
    Ending poisoner_after = Ending::running;

    std::vector<Body> bodies;
    for (int i = 0; i < blocked; ++i) {
        if (block_writers) {
            bodies.push_back([&, out = channel.writer()]() mutable {
                try {
                    for (int v = 0;; ++v) out(v);
                } catch (const csp::ChannelPoisonException&) {
                    ++poisoned;
                } catch (...) {
                    ++ended_otherwise;
                }
            });
        } else {
            bodies.push_back([&, in = channel.reader()]() mutable {
                try {
                    for (;;) in();
                } catch (const csp::ChannelPoisonException&) {
                    ++poisoned;
                } catch (...) {
                    ++ended_otherwise;
                }
            });
        }
    }
    // The poisoner holds an end of each side, so neither side can retire.
    bodies.push_back([&, in = channel.reader(), out = channel.writer(), channel]() mutable {
        csp::sleep(50ms);  // let the others block first
        switch (poisoner) {
            case by_reader_end: in.poison(); break;
            case by_writer_end: out.poison(); break;
            case by_channel: channel.poison(); break;
            default: csp::poison(in); break;
        }
        try {
            if (block_writers)
                in();
            else
                out(1);
            poisoner_after = Ending::normally;
        } catch (const csp::ChannelPoisonException&) {
            poisoner_after = Ending::poisoned;
        }
    });
    csp_test::run_network(std::move(bodies));

    CHECK(poisoned == blocked);
    CHECK(ended_otherwise == 0);
    CHECK(poisoner_after == Ending::poisoned);
}

// A move-only type crosses every kind of channel.
TEST_CASE("a move-only value type crosses a channel", "[conformance][values]") {
    const int buffer = GENERATE(0, 1, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    constexpr int count = 100;
    auto channel = csp_test::make_channel<std::unique_ptr<int>>(buffer, "move-only");
    std::vector<int> got;
    std::vector<Body> bodies;
    bodies.push_back([&, out = channel.writer()]() mutable {
        for (int i = 0; i < count; ++i) out(std::make_unique<int>(i));
        out.retire();
    });
    bodies.push_back([&, in = channel.reader()]() mutable {
        for (;;) {
            std::unique_ptr<int> value = in();
            got.push_back(value ? *value : -1);
        }
    });
    csp_test::run_network(std::move(bodies));

    std::vector<int> expected(count);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(got == expected);
}

// read() and write() are the named forms of in() and out(v); an lvalue moved
// with write(std::move(v)) arrives without a copy.
TEST_CASE("read and write are the named forms of the call operators", "[conformance][values]") {
    const int buffer = GENERATE(0, 16);
    CAPTURE(csp_test::placement_name(), buffer);
    const TrackedCounts before;
    {
        auto channel = csp_test::make_channel<Tracked>(buffer, "named-forms");
        std::vector<int> got;
        std::vector<Body> bodies;
        bodies.push_back([&, out = channel.writer()]() mutable {
            for (int i = 0; i < 20; ++i) {
                Tracked value(i);
                out.write(std::move(value));
            }
        });
        bodies.push_back([&, in = channel.reader()]() mutable {
            for (;;) got.push_back(in.read().value);
        });
        csp_test::run_network(std::move(bodies));
        CHECK(got.size() == 20);
        CHECK(std::is_sorted(got.begin(), got.end()));
    }
    CHECK(Tracked::live == before.live);
    CHECK(Tracked::copies == before.copies);
}
