// The MPI suite: one network across ranks (csp/mpi.hpp). Every rank runs this
// program and every test case, in the same order (SPMD): a test case makes
// the same channels and places the same processes on every rank, and checks
// on every rank what Parallel returned there. tests/meson.build runs it on
// 1 rank (no mpirun), 2 and 4 (4 oversubscribe a 2-core machine).
#include <csp/csp.hpp>
#include <csp/mpi.hpp>
#include <csp/sim.hpp>

#include "poison_race.hpp"
#include "support.hpp"
#include "unserved_chooser.hpp"

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

int ranks() { return csp::mpi::size(); }

// Ids written by writer w: w * kPer + i.
constexpr std::int64_t kPer = 1'000'000;

auto writer = csp::process("writer", [](csp::ChannelOut<std::int64_t> out, std::int64_t w, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) out(w * kPer + i);
    return n;
});

// reader: every value until the writers of every rank have retired.
auto reader = csp::process("reader", [](csp::ChannelIn<std::int64_t> in) {
    std::vector<std::int64_t> got;
    try {
        for (;;) got.push_back(in());
    } catch (const csp::ChannelRetireException&) {
    }
    return got;
});

// every_id_once: the ids of writers 0..writers-1, n each, each exactly once.
void check_every_id_once(std::vector<std::int64_t> ids, std::int64_t writers, std::int64_t n) {
    std::sort(ids.begin(), ids.end());
    REQUIRE(ids.size() == static_cast<std::size_t>(writers * n));
    std::size_t k = 0;
    for (std::int64_t w = 0; w < writers; ++w) {
        for (std::int64_t i = 0; i < n; ++i) REQUIRE(ids[k++] == w * kPer + i);
    }
}

// any_to_any: 2 writers and 2 readers (made by `reading`, which reads until
// retired) per rank on one channel: every value is read once.
template <class Reading>
void any_to_any(Reading& reading, const std::string& name, std::size_t capacity, std::int64_t n) {
    csp::Channel<std::int64_t> ch{name, csp::buffer(capacity)};
    const std::int64_t writers = 2 * ranks();
    std::vector<csp::Process<std::int64_t>> ws;
    for (std::int64_t w = 0; w < writers; ++w) ws.push_back(writer(ch.writer(), w, n));
    auto [sent, got] = csp::Parallel(csp::spread(std::move(ws)), csp::spread(reading(ch.reader()) * (2 * ranks())));
    CHECK(std::accumulate(sent.begin(), sent.end(), std::int64_t{0}) == writers * n);
    std::vector<std::int64_t> all;
    for (auto& part : got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), writers, n);
}

// merge_on_every_rank: k channels named prefix + c, each written by a
// writer (n values) on rank c + 1; on every rank a reader of all of them,
// made by `reading(ins)`, reads until every one has retired: every value is
// read once.
template <class Reading>
void merge_on_every_rank(const std::string& prefix, int k, std::int64_t n, std::size_t capacity, Reading reading) {
    std::vector<csp::Channel<std::int64_t>> chans;
    for (int c = 0; c < k; ++c) chans.emplace_back(prefix + std::to_string(c), csp::buffer(capacity));
    std::vector<csp::Process<std::int64_t>> ws;
    for (int c = 0; c < k; ++c) ws.push_back(csp::on_rank((c + 1) % ranks(), writer(chans[c].writer(), c, n)));
    std::vector<csp::Process<std::vector<std::int64_t>>> rs;
    for (int r = 0; r < ranks(); ++r) {
        std::vector<csp::ChannelIn<std::int64_t>> ins;
        for (auto& ch : chans) ins.push_back(ch.reader());
        rs.push_back(csp::on_rank(r, reading(std::move(ins))));
    }
    auto [sent, got] = csp::Parallel(std::move(ws), std::move(rs));
    CHECK(std::accumulate(sent.begin(), sent.end(), std::int64_t{0}) == k * n);
    std::vector<std::int64_t> all;
    for (auto& part : got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), k, n);
}

}  // namespace

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    return Catch::Session().run(argc, argv);
}

TEST_CASE("a writer on the first rank and a reader on the last: every value once, in order", "[mpi]") {
    csp::Channel<std::int64_t> ch{"first-to-last"};
    const std::int64_t n = 2000;
    auto [sent, got] = csp::Parallel(csp::on_rank(0, writer(ch.writer(), 0, n)),
                                     csp::on_rank(ranks() - 1, reader(ch.reader())));
    CHECK(sent == n);
    REQUIRE(got.size() == static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("values of a serialized type cross ranks intact", "[mpi]") {
    csp::Channel<std::string> ch{"strings", csp::buffer(3)};
    auto speak = csp::process([](csp::ChannelOut<std::string> out) {
        for (int i = 0; i < 300; ++i) out(std::string(static_cast<std::size_t>(i), 'a' + i % 26));
    });
    auto listen = csp::process([](csp::ChannelIn<std::string> in) {
        int good = 0;
        for (int i = 0; i < 300; ++i) {
            const std::string s = in();
            good += s == std::string(static_cast<std::size_t>(i), 'a' + i % 26) ? 1 : 0;
        }
        return good;
    });
    auto [nothing, good] = csp::Parallel(csp::on_rank(ranks() - 1, speak(ch.writer())), csp::on_rank(0, listen(ch.reader())));
    (void)nothing;
    CHECK(good == 300);
}

// Values passed along a chain of stages round the ranks: each received
// value's parcel is sent on as it is where it can be (no copy:
// Comm::post_parcel, Message::take_parcel), so its bytes and its size must
// survive every hop, for sizes around the header's and buffer sizes.
TEST_CASE("values relayed from rank to rank arrive intact, of every size from 0 to 256 KiB", "[mpi]") {
    constexpr int kStages = 5;
    // (Around the sizes where a message's path changes: a value received
    // into the reader's own record (up to 48 bytes of payload: 40 here, the
    // vector's length first), a message kept inline (up to 160 bytes of
    // payload), received into the receiver's buffer (480), bundled with
    // others (992), a remote writer's value copied into its message (up to
    // 1024: 1016 here), sent from its parcel, sent from where the writer's
    // vector lies (over 32 KiB of elements).)
    const std::vector<std::size_t> sizes = {0,    1,    7,    39,    40,    41,    48,    152,   153,    255,
                                            256,  471,  472,  473,   983,   984,   985,   1016,  1017,   4095,
                                            4096, 32767, 32768, 32769, 65536, 65537, 262144};
    std::vector<csp::Channel<std::vector<char>>> links;
    for (int i = 0; i <= kStages; ++i) links.emplace_back("relay" + std::to_string(i), csp::buffer(i % 2 ? 2 : 0));
    const auto pattern = [](std::size_t size, std::size_t i) { return static_cast<char>((size * 31 + i * 7) % 251); };
    auto source = csp::process("source", [&](csp::ChannelOut<std::vector<char>> out) {
        for (std::size_t size : sizes) {
            std::vector<char> v(size);
            for (std::size_t i = 0; i < size; ++i) v[i] = pattern(size, i);
            out(std::move(v));
        }
    });
    auto stage = csp::process("stage", [](csp::ChannelIn<std::vector<char>> in, csp::ChannelOut<std::vector<char>> out) {
        try {
            for (;;) out(in());
        } catch (const csp::ChannelRetireException&) {
        }
    });
    auto sink = csp::process("sink", [&](csp::ChannelIn<std::vector<char>> in) {
        int good = 0;
        for (std::size_t size : sizes) {
            const std::vector<char> v = in();
            bool same = v.size() == size;
            for (std::size_t i = 0; same && i < size; ++i) same = v[i] == pattern(size, i);
            good += same ? 1 : 0;
        }
        return good;
    });
    std::vector<csp::Process<void>> stages;
    for (int i = 0; i < kStages; ++i) {
        stages.push_back(csp::on_rank((i + 1) % ranks(), stage(links[i].reader(), links[i + 1].writer())));
    }
    auto [sourced, staged, good] =
        csp::Parallel(csp::on_rank(0, source(links[0].writer())), std::move(stages),
                      csp::on_rank((kStages + 1) % ranks(), sink(links[kStages].reader())));
    (void)sourced;
    (void)staged;
    CHECK(good == static_cast<int>(sizes.size()));
}

// Rank r makes the channels r x 100 ms after rank 0, whose writers begin at
// once: every home but rank 0 gets their first messages before it has made
// the channel (and a writer's messages to one rank, posted in a row, go as
// one MPI message: a bundle), and keeps them until it has.
TEST_CASE("messages that reach a channel's home before it has made the channel wait there: every value once, in order",
          "[mpi]") {
    const std::int64_t n = 300;
    std::this_thread::sleep_for(std::chrono::milliseconds(100 * csp::mpi::rank()));
    std::vector<csp::Channel<std::int64_t>> chans;
    for (int k = 0; k < ranks(); ++k) chans.emplace_back("made-late" + std::to_string(k), csp::buffer(k % 2 ? 4 : 0));
    std::vector<csp::Process<std::int64_t>> writers;
    std::vector<csp::Process<std::vector<std::int64_t>>> readers;
    for (int k = 0; k < ranks(); ++k) {
        writers.push_back(csp::on_rank(0, writer(chans[k].writer(), k, n)));
        readers.push_back(csp::on_rank(k, reader(chans[k].reader())));
    }
    auto [sent, got] = csp::Parallel(std::move(writers), std::move(readers));
    for (int k = 0; k < ranks(); ++k) {
        CHECK(sent[k] == n);
        REQUIRE(got[k].size() == static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) REQUIRE(got[k][static_cast<std::size_t>(i)] == k * kPer + i);
    }
}

// home: the home rank of ch (csp::mpi::detail: a white-box look).
template <class T>
int home(csp::Channel<T>& ch) {
    const auto end = ch.reader();
    return csp::mpi::detail::home_rank(end.held_channel());
}

// A channel's home is chosen when the Parallel after it starts, by where the
// processes placed meanwhile hold its ends: values flow towards their
// readers (a farm's results to its collector: samples/mpi/farm.cpp).
TEST_CASE("a channel's home is the rank of its placed readers, else of its placed writers, else by its number",
          "[mpi]") {
    const std::int64_t n = 200;
    const int last = ranks() - 1;
    csp::Channel<std::int64_t> to_last{"to-last", csp::buffer(8)};  // writers everywhere, its reader on the last rank
    csp::Channel<std::int64_t> from_first{"from-first"};             // its writer on rank 0, readers everywhere
    csp::Channel<std::int64_t> mixed{"mixed", csp::buffer(2)};       // both everywhere
    std::vector<csp::Process<std::int64_t>> writers, mixed_writers;
    for (int w = 0; w < ranks(); ++w) {
        writers.push_back(writer(to_last.writer(), w, n));
        mixed_writers.push_back(writer(mixed.writer(), w, n));
    }
    auto [sent, got, first_sent, first_got, mixed_sent, mixed_got] =
        csp::Parallel(csp::spread(std::move(writers)), csp::on_rank(last, reader(to_last.reader())),
                      csp::on_rank(0, writer(from_first.writer(), 0, n)),
                      csp::spread(reader(from_first.reader()) * ranks()), csp::spread(std::move(mixed_writers)),
                      csp::spread(reader(mixed.reader()) * ranks()));
    check_every_id_once(std::move(got), ranks(), n);
    std::vector<std::int64_t> all;
    for (auto& part : first_got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), 1, n);
    all.clear();
    for (auto& part : mixed_got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), ranks(), n);
    (void)sent;
    (void)first_sent;
    (void)mixed_sent;
    if (ranks() > 1) {
        CHECK(home(to_last) == last);
        CHECK(home(from_first) == 0);
        CHECK(home(mixed) >= 0);  // (by its number in the job)
    }
}

// A channel used from main before any Parallel has its home chosen there,
// by what is known (nothing placed yet: by its number), on every rank alike;
// the rank it chose may be this one (its own messages reach it too).
TEST_CASE("a shared channel written from main on every rank before any Parallel: every value read once", "[mpi]") {
    csp::Channel<std::int64_t> ch{"written-from-main", csp::buffer(64)};
    {
        auto out = ch.writer();
        out(csp::mpi::rank() * kPer);
        out(csp::mpi::rank() * kPer + 1);
    }
    auto [got] = csp::Parallel(csp::on_rank(ranks() - 1, reader(ch.reader())));
    check_every_id_once(std::move(got), ranks(), 2);
}

TEST_CASE("any-to-any across ranks: writers and readers on every rank, every value read once", "[mpi]") {
    for (std::size_t capacity : {std::size_t{0}, std::size_t{1}, std::size_t{16}}) {
        CAPTURE(capacity);
        any_to_any(reader, "any-to-any", capacity, 500);
    }
}

TEST_CASE("retire is counted over all ranks: readers end only when every rank's writers have left", "[mpi]") {
    csp::Channel<std::int64_t> ch{"retire-over-ranks"};
    // Writers that end at different times, one per rank.
    auto late_writer = csp::process("late-writer", [](csp::ChannelOut<std::int64_t> out, std::int64_t w) {
        csp::sleep(std::chrono::milliseconds(20 * w));
        for (std::int64_t i = 0; i < 10; ++i) out(w * kPer + i);
    });
    std::vector<csp::Process<>> ws;
    for (int w = 0; w < ranks(); ++w) ws.push_back(late_writer(ch.writer(), w));
    auto [done, got] = csp::Parallel(csp::spread(std::move(ws)), csp::on_rank(0, reader(ch.reader())));
    (void)done;
    check_every_id_once(std::move(got), ranks(), 10);
}

TEST_CASE("poison from one rank reaches blocked readers and writers on every rank", "[mpi]") {
    csp::Channel<std::int64_t> quiet{"quiet"};  // nobody writes: its readers block
    csp::Channel<std::int64_t> full{"full"};    // nobody reads: its writers block
    auto blocked_reader = csp::process([](csp::ChannelIn<std::int64_t> in) {
        try {
            in();
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto blocked_writer = csp::process([](csp::ChannelOut<std::int64_t> out) {
        try {
            out(1);
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto poisoner = csp::process([](csp::ChannelOut<std::int64_t> a, csp::ChannelIn<std::int64_t> b) {
        csp::sleep(std::chrono::milliseconds(100));
        a.poison();
        b.poison();
    });
    auto [readers, writers, nothing] =
        csp::Parallel(csp::spread(blocked_reader(quiet.reader()) * ranks()),
                      csp::spread(blocked_writer(full.writer()) * ranks()),
                      csp::on_rank(ranks() - 1, poisoner(quiet.writer(), full.reader())));
    (void)nothing;
    CHECK(std::accumulate(readers.begin(), readers.end(), 0) == ranks());
    CHECK(std::accumulate(writers.begin(), writers.end(), 0) == ranks());
}

TEST_CASE("every rank gets every placed process's result, in order", "[mpi]") {
    auto square = csp::process([](int x) { return x * x; });
    std::vector<csp::Process<int>> v;
    for (int i = 0; i < 3 * ranks(); ++i) v.push_back(square(i));
    auto [squares, here] = csp::Parallel(csp::spread(std::move(v)), csp::process([] { return csp::mpi::rank(); })());
    REQUIRE(squares.size() == static_cast<std::size_t>(3 * ranks()));
    for (int i = 0; i < 3 * ranks(); ++i) CHECK(squares[static_cast<std::size_t>(i)] == i * i);
    CHECK(here == csp::mpi::rank());  // (an unplaced process runs on every rank)
}

TEST_CASE("a process that throws on one rank is a ProcessError on every rank naming it and its rank", "[mpi]") {
    const int r = ranks() - 1;
    auto failing = csp::process("failing", [] { throw std::out_of_range("deliberately"); });
    try {
        csp::Parallel(csp::on_rank(r, failing()));
        FAIL("no ProcessError");
    } catch (const csp::ProcessError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("failing") != std::string::npos);
        CHECK(what.find("deliberately") != std::string::npos);
        if (ranks() > 1) CHECK(what.find("rank " + std::to_string(r)) != std::string::npos);
    }
}

// Alternation across ranks: channels made one after another have their homes
// on different ranks, so a choice over several of them has guards homed on
// other ranks on every rank.

// merger: a choice over every input until all are retired; what it read.
auto merger = csp::process("merger", [](std::vector<csp::ChannelIn<std::int64_t>> ins, bool fair) {
    std::vector<csp::InputGuard<std::int64_t>> guards;
    for (auto& in : ins) guards.emplace_back(in);
    std::vector<std::int64_t> got;
    try {
        for (;;) {
            auto [index, value] = fair ? csp::FairSelect(guards) : csp::PriSelect(guards);
            (void)index;
            got.push_back(*value);
        }
    } catch (const csp::ChannelRetireException&) {
    }
    return got;
});

TEST_CASE("choices over channels homed on every rank, by choosers on every rank: every value read once", "[mpi][alt]") {
    for (std::size_t capacity : {std::size_t{0}, std::size_t{2}}) {
        for (bool fair : {true, false}) {
            CAPTURE(capacity, fair);
            merge_on_every_rank("merged-", 2 * ranks() + 1, 200, capacity,
                                [&](std::vector<csp::ChannelIn<std::int64_t>> ins) { return merger(std::move(ins), fair); });
        }
    }
}

TEST_CASE("output guards homed on other ranks: every value written by a choice is read once", "[mpi][alt]") {
    // Each chooser offers its next value on every channel at once; readers
    // on every rank drain them.
    const int k = ranks() + 1;
    const std::int64_t n = 300;
    std::vector<csp::Channel<std::int64_t>> chans;
    for (int c = 0; c < k; ++c) chans.emplace_back("spread-" + std::to_string(c));
    auto spreader = csp::process("spreader", [](std::vector<csp::ChannelOut<std::int64_t>> outs, std::int64_t w,
                                                std::int64_t n) {
        std::vector<std::int64_t> per(outs.size(), 0);
        for (std::int64_t i = 0; i < n; ++i) {
            std::vector<csp::OutputGuard<std::int64_t>> guards;
            for (auto& out : outs) guards.emplace_back(out, w * kPer + i);
            ++per[csp::FairSelect(std::move(guards)).first];
        }
        return per;
    });
    std::vector<csp::Process<std::vector<std::int64_t>>> ss;
    for (int r = 0; r < ranks(); ++r) {
        std::vector<csp::ChannelOut<std::int64_t>> outs;
        for (auto& ch : chans) outs.push_back(ch.writer());
        ss.push_back(csp::on_rank(r, spreader(std::move(outs), r, n)));
    }
    std::vector<csp::Process<std::vector<std::int64_t>>> rs;
    for (int c = 0; c < k; ++c) rs.push_back(csp::on_rank(c % ranks(), reader(chans[c].reader())));
    auto [per, got] = csp::Parallel(std::move(ss), std::move(rs));
    std::vector<std::int64_t> all;
    for (auto& part : got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), ranks(), n);
    for (int c = 0; c < k; ++c) {  // what each chooser says it sent on c, c's reader got
        std::int64_t said = 0;
        for (auto& p : per) said += p[static_cast<std::size_t>(c)];
        CHECK(said == static_cast<std::int64_t>(got[static_cast<std::size_t>(c)].size()));
    }
}

TEST_CASE("choices on both ends of channels across ranks: output guards meet input guards", "[mpi][alt]") {
    // Two channels, homed on different ranks; a chooser writes with output
    // guards over both, another reads with input guards over both: every
    // communication is two choices meeting, on ranks other than the home.
    csp::Channel<std::int64_t> a{"both-a"}, b{"both-b"};
    const std::int64_t n = 300;
    auto offerer = csp::process("offerer", [](csp::ChannelOut<std::int64_t> x, csp::ChannelOut<std::int64_t> y,
                                              std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) (void)csp::FairSelect(csp::OutputGuard(x, i), csp::OutputGuard(y, i));
    });
    auto taker = csp::process("taker", [](csp::ChannelIn<std::int64_t> x, csp::ChannelIn<std::int64_t> y,
                                          std::int64_t n) {
        std::vector<std::int64_t> got;
        for (std::int64_t i = 0; i < n; ++i) {
            auto r = csp::FairSelect(csp::InputGuard(x), csp::InputGuard(y));
            got.push_back(r.index() == 0 ? std::get<0>(r) : std::get<1>(r));
        }
        return got;
    });
    auto [nothing, got] = csp::Parallel(csp::on_rank(ranks() - 1, offerer(a.writer(), b.writer(), n)),
                                        csp::on_rank(ranks() > 2 ? 2 : 0, taker(a.reader(), b.reader(), n)));
    (void)nothing;
    REQUIRE(got.size() == static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) CHECK(got[static_cast<std::size_t>(i)] == i);
}

TEST_CASE("choosers on both ends of two channels with one home, on every rank: every value once", "[mpi][alt]") {
    // Channels made `ranks()` apart share a home, so on every rank but that
    // one both choosers are remote to both channels: their offers cross at
    // the home.
    std::vector<csp::Channel<std::int64_t>> chans;
    for (int c = 0; c <= ranks(); ++c) chans.emplace_back("crossing-" + std::to_string(c));
    csp::Channel<std::int64_t>& x = chans.front();
    csp::Channel<std::int64_t>& y = chans.back();
    const std::int64_t n = 100;
    auto offerer = csp::process("crossing-writer", [](csp::ChannelOut<std::int64_t> a, csp::ChannelOut<std::int64_t> b,
                                                      std::int64_t w, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) {
            (void)csp::FairSelect(csp::OutputGuard(a, w * kPer + i), csp::OutputGuard(b, w * kPer + i));
        }
    });
    auto taker = csp::process("crossing-reader", [](csp::ChannelIn<std::int64_t> a, csp::ChannelIn<std::int64_t> b,
                                                    std::int64_t n) {
        std::vector<std::int64_t> got;
        for (std::int64_t i = 0; i < n; ++i) {
            auto r = csp::FairSelect(csp::InputGuard(a), csp::InputGuard(b));
            got.push_back(r.index() == 0 ? std::get<0>(r) : std::get<1>(r));
        }
        return got;
    });
    std::vector<csp::Process<>> ws;
    std::vector<csp::Process<std::vector<std::int64_t>>> rs;
    for (int r = 0; r < ranks(); ++r) {
        ws.push_back(csp::on_rank(r, offerer(x.writer(), y.writer(), r, n)));
        rs.push_back(csp::on_rank(r, taker(x.reader(), y.reader(), n)));
    }
    auto [nothing, got] = csp::Parallel(std::move(ws), std::move(rs));
    (void)nothing;
    std::vector<std::int64_t> all;
    for (auto& part : got) all.insert(all.end(), part.begin(), part.end());
    check_every_id_once(std::move(all), ranks(), n);
}

TEST_CASE("a choice across ranks keeps priority, skip and timeouts", "[mpi][alt]") {
    csp::Channel<int> first{"pri-first"}, second{"pri-second"}, go{"pri-go"};
    auto feeder = csp::process([](csp::ChannelOut<int> a, csp::ChannelOut<int> b, csp::ChannelOut<int> go) {
        go(0);
        // Both ready (buffered) before the chooser looks again.
        a(1);
        b(2);
    });
    auto chooser = csp::process([](csp::ChannelIn<int> a, csp::ChannelIn<int> b, csp::ChannelIn<int> go) {
        std::vector<int> seen;
        // Nothing ready: the skip fires.
        seen.push_back(static_cast<int>(csp::PriSelect(csp::InputGuard(a), csp::InputGuard(b), csp::SkipGuard()).index()));
        // Nothing ready for 50 ms: the timeout fires, no sooner.
        const auto start = std::chrono::steady_clock::now();
        const auto r = csp::PriSelect(csp::InputGuard(a), csp::TimeoutGuard(std::chrono::milliseconds(50)));
        seen.push_back(static_cast<int>(r.index()));
        seen.push_back(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50) ? 1 : 0);
        go();
        csp::sleep(std::chrono::milliseconds(100));
        // Both ready: priority takes the first, then the second.
        for (int i = 0; i < 2; ++i) {
            const auto r2 = csp::PriSelect(csp::InputGuard(a), csp::InputGuard(b));
            seen.push_back(r2.index() == 0 ? std::get<0>(r2) : std::get<1>(r2));
        }
        return seen;
    });
    csp::Channel<int> a{"pri-a", csp::buffer(1)}, b{"pri-b", csp::buffer(1)};
    auto [nothing, seen] = csp::Parallel(csp::on_rank(0, feeder(a.writer(), b.writer(), go.writer())),
                                         csp::on_rank(ranks() - 1, chooser(a.reader(), b.reader(), go.reader())));
    (void)nothing;
    (void)first;
    (void)second;
    CHECK(seen == std::vector<int>{2, 1, 1, 1, 2});
}

TEST_CASE("poison and retire reach a choice across ranks that is parked", "[mpi][alt]") {
    csp::Channel<int> p{"parked-poison"}, q{"parked-quiet"}, r{"parked-retire"};
    auto poisoned_chooser = csp::process([](csp::ChannelIn<int> p, csp::ChannelIn<int> q) {
        try {
            (void)csp::AltSelect(csp::InputGuard(p), csp::InputGuard(q));
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto retired_chooser = csp::process([](csp::ChannelIn<int> r) {
        try {
            (void)csp::AltSelect(csp::InputGuard(r), csp::TimeoutGuard(std::chrono::seconds(30)));
        } catch (const csp::ChannelRetireException&) {
            return 1;
        }
        return 0;
    });
    auto poisoner = csp::process([](csp::ChannelOut<int> p, csp::ChannelOut<int> q, csp::ChannelOut<int> r) {
        csp::sleep(std::chrono::milliseconds(100));
        p.poison();
        q.retire();
        r.retire();
    });
    auto [poisoned, retired, nothing] =
        csp::Parallel(csp::on_rank(ranks() - 1, poisoned_chooser(p.reader(), q.reader())),
                      csp::on_rank(ranks() - 1, retired_chooser(r.reader())),
                      csp::on_rank(0, poisoner(p.writer(), q.writer(), r.writer())));
    (void)nothing;
    CHECK(poisoned == 1);
    CHECK(retired == 1);
}

// A rank whose processes all compute must still answer other ranks: its
// communication thread looks in while its worker, which was serving the
// ranks' messages, runs a process that does not yield (mpi/comm.cpp). On
// one clock (one host): the far reader's reads of the channels homed on
// rank 0 end while rank 0's process still computes.
TEST_CASE("a rank whose worker computes for long still answers the other ranks' reads of its channels", "[mpi][serve]") {
    using Clock = std::chrono::steady_clock;
    constexpr int kValues = 100;
    const auto now_ns = [] {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    };
    // (A channel of each home, so that one at least is rank 0's.)
    std::vector<csp::Channel<int>> data, go;
    for (int r = 0; r < ranks(); ++r) data.emplace_back("serve-data" + std::to_string(r), csp::buffer(kValues));
    for (int r = 0; r < ranks(); ++r) go.emplace_back("serve-go" + std::to_string(r), csp::buffer(1));
    std::vector<csp::ChannelOut<int>> fill, start;
    std::vector<csp::ChannelIn<int>> drain, started;
    for (auto& ch : data) fill.push_back(ch.writer()), drain.push_back(ch.reader());
    for (auto& ch : go) start.push_back(ch.writer()), started.push_back(ch.reader());
    auto computer = csp::process("computer", [&](std::vector<csp::ChannelOut<int>> outs,
                                                 std::vector<csp::ChannelIn<int>> gos) {
        for (auto& out : outs) {
            for (int i = 0; i < kValues; ++i) out(i);
        }
        for (auto& g : gos) g();
        // Two seconds of this thread's own CPU time, not of the clock: on a
        // loaded machine (4 ranks and a build on 2 cores) the wall-clock
        // second ended before the far reader, starved too, was done; and
        // one second of CPU time was 7 ms short once (CI, 4 ranks).
        const auto cpu_ns = [] {
            timespec t{};
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
            return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
        };
        const std::int64_t begun = cpu_ns();
        volatile std::uint64_t spins = 0;
        while (cpu_ns() - begun < 2'000'000'000) spins = spins + 1;  // (never yields)
        return now_ns();
    });
    auto far_reader = csp::process("far reader", [&](std::vector<csp::ChannelIn<int>> ins,
                                                     std::vector<csp::ChannelOut<int>> gos) {
        for (auto& g : gos) g(1);
        csp::sleep(std::chrono::milliseconds(50));  // (the computer computes by now)
        std::int64_t sum = 0;
        for (auto& in : ins) {
            for (int i = 0; i < kValues; ++i) sum += in() == i ? 1 : 0;
        }
        return std::pair<std::int64_t, std::int64_t>{sum, now_ns()};
    });
    auto [computed_until, read] = csp::Parallel(csp::on_rank(0, computer(std::move(fill), std::move(started))),
                                                csp::on_rank(ranks() - 1, far_reader(std::move(drain), std::move(start))));
    CHECK(read.first == kValues * ranks());  // (every value, in order)
    if (ranks() > 1) CHECK(read.second < computed_until);
}

TEST_CASE("a csp::multiprocess on a rank cannot reach a channel shared by ranks: a UsageError naming it, no hang",
          "[mpi]") {
    // (On one rank nothing is shared: the child reads as any multiprocess does.)
    csp::Channel<int> c{"to-child"};
    auto child = csp::multiprocess("child", [](csp::ChannelIn<int> in) { return in(); });
    auto feeder = csp::process("feeder", [](csp::ChannelOut<int> out) {
        try {
            out(7);
            return 0;
        } catch (const csp::ChannelPoisonException&) {
            return 1;  // the refused child's channels are poisoned
        }
    });
    const int last = ranks() - 1;
    if (ranks() == 1) {
        auto [got, poisoned] = csp::Parallel(csp::on_rank(last, child(c.reader())), csp::on_rank(0, feeder(c.writer())));
        CHECK(got == 7);
        CHECK(poisoned == 0);
        return;
    }
    try {
        csp::Parallel(csp::on_rank(last, child(c.reader())), csp::on_rank(0, feeder(c.writer())));
        FAIL("no ProcessError");
    } catch (const csp::ProcessError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("'to-child' is shared by MPI ranks") != std::string::npos);
        CHECK(what.find("cannot reach the other ranks") != std::string::npos);
        CHECK(what.find("child") != std::string::npos);
    }
    // The helper thread that refused the child poisoned its channel from
    // outside any process, and stays in its pool: the deadlock detector
    // still sees the rank quiet when all its processes wait (a helper that
    // had waited for that poison counted as running for good, and the next
    // deadlock across ranks hung).
    csp::Channel<int> a{"after-refusal-a"}, b{"after-refusal-b"};
    auto one = csp::process("reads-a-then-writes-b", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        out(in());
    });
    auto other = csp::process("reads-b-then-writes-a", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        out(in());
    });
    CHECK_THROWS_AS(csp::Parallel(csp::on_rank(last, one(a.reader(), b.writer())),
                                  csp::on_rank(0, other(b.reader(), a.writer()))),
                    csp::DeadlockError);
}

// (Consecutive channels have consecutive homes: among max(2, ranks)
// channels made in a row, a process on rank 0 meets one homed on its own
// rank and ones homed on others.)
int channels_for_every_home() { return std::max(2, ranks()); }

TEST_CASE("an extended read across ranks: the write completes only when the action returns, every value once",
          "[mpi][extended]") {
    const int last = ranks() - 1;
    const std::int64_t n = 40;
    // The writer drains the notes each action leaves before it returns:
    // once its write of value i is over, the actions of values 0..i have
    // returned, but for the values a buffer of `capacity` slots holds.
    auto writing = csp::process("ext-writer", [](csp::ChannelOut<std::int64_t> out, csp::ChannelIn<int> notes,
                                                 std::int64_t n, std::int64_t capacity) {
        std::int64_t seen = 0, early = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            out(i);
            while (csp::PriSelect(csp::InputGuard(notes), csp::SkipGuard()).index() == 0) ++seen;
            if (seen < i + 1 - capacity) ++early;
        }
        for (; seen < n; ++seen) notes();  // (the actions of values still buffered)
        return early;
    });
    // (By extended_read, or by an ExtendedInputGuard in a choice.)
    auto reading = csp::process("ext-reader", [](csp::ChannelIn<std::int64_t> in, csp::ChannelOut<int> notes,
                                                 std::int64_t n, bool guard) {
        std::vector<std::int64_t> got;
        const auto action = [&](const std::int64_t& v) {
            csp::sleep(std::chrono::microseconds(200));  // (a write that completed early would be seen)
            notes(1);
            got.push_back(v);
        };
        for (std::int64_t i = 0; i < n; ++i) {
            if (guard) csp::Alternation(csp::ExtendedInputGuard(in, action)).execute();
            else in.extended_read(action);
        }
        return got;
    });
    for (const bool guard : {false, true}) for (const std::int64_t capacity : {0, 1}) {
        for (int k = 0; k < channels_for_every_home(); ++k) {
            CAPTURE(guard, capacity, k);
            const std::string tag = std::to_string(k) + (guard ? "g" : "");
            csp::Channel<std::int64_t> ch{"extended-" + tag, csp::buffer(static_cast<std::size_t>(capacity))};
            csp::Channel<int> notes{"extended-notes-" + tag, csp::buffer(static_cast<std::size_t>(n))};
            auto [early, got] = csp::Parallel(csp::on_rank(last, writing(ch.writer(), notes.reader(), n, capacity)),
                                              csp::on_rank(0, reading(ch.reader(), notes.writer(), n, guard)));
            CHECK(early == 0);
            REQUIRE(got.size() == static_cast<std::size_t>(n));
            for (std::int64_t i = 0; i < n; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
        }
    }
}

TEST_CASE("extended reads across ranks, any-to-any: readers and writers on every rank, every value once",
          "[mpi][extended]") {
    auto ext_reader = csp::process("ext-any-reader", [](csp::ChannelIn<std::int64_t> in) {
        std::vector<std::int64_t> got;
        try {
            for (;;) got.push_back(in.extended_read([](const std::int64_t& v) { return v; }));
        } catch (const csp::ChannelRetireException&) {
        }
        return got;
    });
    for (std::size_t capacity : {std::size_t{0}, std::size_t{4}}) {
        CAPTURE(capacity);
        any_to_any(ext_reader, "extended-any", capacity, 200);
    }
}

TEST_CASE("an extended read across ranks whose action throws poisons the channel: the writer gets poison",
          "[mpi][extended]") {
    const int last = ranks() - 1;
    auto feeder = csp::process("ext-feeder", [](csp::ChannelOut<int> out) {
        try {
            out(7);
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto failing = csp::process("ext-failing", [](csp::ChannelIn<int> in) {
        int seen = 0;
        try {
            in.extended_read([&](const int& v) {
                seen = v;
                throw std::runtime_error("action failed");
            });
        } catch (const std::runtime_error&) {
            return seen;
        }
        return -1;
    });
    for (int k = 0; k < channels_for_every_home(); ++k) {
        CAPTURE(k);
        csp::Channel<int> ch{"extended-throws-" + std::to_string(k)};
        auto [poisoned, seen] = csp::Parallel(csp::on_rank(last, feeder(ch.writer())), csp::on_rank(0, failing(ch.reader())));
        CHECK(poisoned == 1);
        CHECK(seen == 7);
    }
}

TEST_CASE("output guards across ranks complete with extended readers only when the action returns", "[mpi][extended][alt]") {
    const int last = ranks() - 1;
    const std::int64_t n = 60;
    auto chooser = csp::process("ext-chooser", [](csp::ChannelOut<std::int64_t> out, csp::ChannelIn<int> notes,
                                                  std::int64_t n) {
        std::int64_t seen = 0, early = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            csp::Alternation(csp::OutputGuard(out, i)).execute();
            while (csp::PriSelect(csp::InputGuard(notes), csp::SkipGuard()).index() == 0) ++seen;
            if (seen < i + 1) ++early;
        }
        return early;
    });
    auto reading = csp::process("ext-reader", [](csp::ChannelIn<std::int64_t> in, csp::ChannelOut<int> notes,
                                                 std::int64_t n) {
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            sum += in.extended_read([&](const std::int64_t& v) {
                notes(1);
                return v;
            });
        }
        return sum;
    });
    for (int k = 0; k < channels_for_every_home(); ++k) {
        CAPTURE(k);
        csp::Channel<std::int64_t> ch{"extended-guarded-" + std::to_string(k)};
        csp::Channel<int> notes{"extended-guarded-notes-" + std::to_string(k), csp::buffer(static_cast<std::size_t>(n))};
        auto [early, sum] = csp::Parallel(csp::on_rank(last, chooser(ch.writer(), notes.reader(), n)),
                                          csp::on_rank(0, reading(ch.reader(), notes.writer(), n)));
        CHECK(early == 0);
        CHECK(sum == n * (n - 1) / 2);
    }
}

TEST_CASE("ExtendedInputGuards across ranks: choosers on every rank, over channels of every home, every value once",
          "[mpi][extended][alt]") {
    // Each chooser alts over the extended guards of every channel until
    // every one has retired (a retired guard takes no part meanwhile).
    auto chooser = csp::process("ext-chooser-any", [](std::vector<csp::ChannelIn<std::int64_t>> ins) {
        std::vector<std::int64_t> got;
        try {
            for (;;) {
                std::vector<csp::ExtendedInputGuard<std::int64_t>> guards;
                for (auto& in : ins) guards.emplace_back(in, [&](const std::int64_t& v) { got.push_back(v); });
                csp::Alternation(std::move(guards)).fair_execute();
            }
        } catch (const csp::ChannelRetireException&) {
        }
        return got;
    });
    merge_on_every_rank("ext-any-guarded-", channels_for_every_home(), 100, 0,
                        [&](std::vector<csp::ChannelIn<std::int64_t>> ins) { return chooser(std::move(ins)); });
}

// (The ranks of the suite run on one machine: steady_clock is the same
// clock in all of them, so times taken on different ranks compare.)
std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// overlapping_phases: of `phases` phases, those that some member left
// before another arrived there. times: per member, when it arrived at and
// left each phase in turn.
std::int64_t overlapping_phases(const std::vector<std::vector<std::int64_t>>& times, std::int64_t phases) {
    std::int64_t overlaps = 0;
    for (std::int64_t k = 0; k < phases; ++k) {
        std::int64_t last_arrival = 0, first_leave = INT64_MAX;
        for (const auto& t : times) {
            REQUIRE(t.size() == static_cast<std::size_t>(2 * phases));
            last_arrival = std::max(last_arrival, t[static_cast<std::size_t>(2 * k)]);
            first_leave = std::min(first_leave, t[static_cast<std::size_t>(2 * k + 1)]);
        }
        if (first_leave < last_arrival) ++overlaps;
    }
    return overlaps;
}

// phased: a member that syncs `phases` times, noting when it arrives at
// each phase and when it leaves it.
auto phased = csp::process("phased", [](csp::BarrierEnd end, std::int64_t phases) {
    std::vector<std::int64_t> times;
    for (std::int64_t k = 0; k < phases; ++k) {
        times.push_back(now_ns());
        end.sync();
        times.push_back(now_ns());
    }
    return times;
});

TEST_CASE("a barrier shared by ranks: members on every rank, no member leaves a phase before all arrived",
          "[mpi][barrier]") {
    const std::int64_t phases = 100;
    auto& member = phased;
    for (const int per_rank : {1, 2}) {
        CAPTURE(per_rank);
        csp::Barrier phase{"phased-" + std::to_string(per_rank)};
        std::vector<csp::Process<std::vector<std::int64_t>>> members;
        for (int m = 0; m < per_rank * ranks(); ++m) members.push_back(member(phase.end(), phases));
        auto times = std::get<0>(csp::Parallel(csp::spread(std::move(members))));
        REQUIRE(times.size() == static_cast<std::size_t>(per_rank * ranks()));
        CHECK(overlapping_phases(times, phases) == 0);
    }
}

TEST_CASE("a barrier shared by ranks: a member that resigns on one rank lets the others go on", "[mpi][barrier]") {
    const int last = ranks() - 1;
    auto member = csp::process("resigner", [](csp::BarrierEnd end, std::int64_t phases) {
        std::int64_t done = 0;
        for (; done < phases; ++done) end.sync();
        end.resign();
        return done;
    });
    csp::Barrier b{"resigning"};
    auto [few, many] = csp::Parallel(csp::on_rank(0, member(b.end(), 20)), csp::on_rank(last, member(b.end(), 60)));
    CHECK(few == 20);
    CHECK(many == 60);
}

TEST_CASE("a barrier shared by ranks: ranks whose programs diverge (one rank's unplaced member syncs more) go on",
          "[mpi][barrier]") {
    // On every rank an unplaced member syncs 3 times; on rank `slow` it
    // pauses, then syncs twice more, while the other ranks have gone on to
    // the next Parallel, whose members (plain or alting) sync 5 times. The
    // slow rank's extra syncs are phases with those members: nobody waits
    // for a member of the slow rank's next Parallel while its member of
    // this one is still there (that was a DeadlockError when the barrier's
    // home was ahead), nor for it while the slow rank's syncs are made by a
    // copy of the end made in the process (its own end resigns at once), or
    // by an end made from the barrier's handle after the pause, when its own
    // resigned (for a moment the slow rank has no member). A spacer barrier moves the next home along, so the slow rank is
    // the home, or before or after it, across the iterations.
    auto first = csp::process("diverging-first", [](csp::BarrierEnd end, std::int64_t syncs, int variant,
                                                    csp::Barrier handle) {
        if (variant == 2) {  // (a copy, then the end resigns)
            csp::BarrierEnd copy = end;
            end.resign();
            end = std::move(copy);
        }
        std::int64_t done = 0;
        for (; done < 3; ++done) end.sync();
        if (syncs > 3) {
            csp::sleep(std::chrono::milliseconds(50));
            if (variant == 3) {  // (the end resigns, then a new one from the handle)
                end.resign();
                end = handle.end();
            }
        }
        for (; done < syncs; ++done) end.sync();
        return done;
    });
    auto second = csp::process("diverging-second", [](csp::BarrierEnd end, bool alting) {
        std::int64_t done = 0;
        for (; done < 5; ++done) {
            if (!alting) {
                end.sync();
            } else if (csp::PriSelect(csp::BarrierGuard(end), csp::TimeoutGuard(std::chrono::seconds(60))).index() != 0) {
                return std::int64_t{-1};
            }
        }
        return done;
    });
    for (const int variant : {0, 1, 2, 3}) {
        const bool alting = variant == 1;
        for (int slow = 0; slow < ranks(); ++slow) {
            CAPTURE(variant, slow);
            csp::Barrier b{"diverging-" + std::to_string(slow) + "-" + std::to_string(variant)};
            const std::int64_t syncs = csp::mpi::rank() == slow ? 5 : 3;
            auto [first_done] = csp::Parallel(first(b.end(), syncs, variant, b));
            CHECK(first_done == syncs);
            auto [second_done] = csp::Parallel(second(b.end(), alting));
            CHECK(second_done == 5);
            csp::Barrier spacer{"spacer-" + std::to_string(slow)};
        }
    }
}

TEST_CASE("a barrier shared by ranks: members that share a rank, and ends made there from a captured handle",
          "[mpi][barrier]") {
    const int last = ranks() - 1;
    auto member = csp::process("member", [](csp::BarrierEnd end) {
        int phases = 0;
        for (; phases < 50; ++phases) end.sync();
        return phases;
    });
    {
        csp::Barrier together{"together"};
        auto [a, b] = csp::Parallel(csp::on_rank(last, member(together.end())), csp::on_rank(last, member(together.end())));
        CHECK(a == 50);
        CHECK(b == 50);
    }
    {
        csp::Barrier spanning{"spanning"};
        auto from_handle = csp::process("from-handle", [member](csp::Barrier b) {
            return std::get<0>(csp::Parallel(member(b.end())));
        });
        auto [a, b] = csp::Parallel(csp::on_rank(0, from_handle(spanning)), csp::on_rank(last, member(spanning.end())));
        CHECK(a == 50);
        CHECK(b == 50);
    }
}

TEST_CASE("a barrier shared by ranks: poison from one rank ends the syncs of every rank", "[mpi][barrier]") {
    const int last = ranks() - 1;
    auto waiter = csp::process("poison-waiter", [](csp::BarrierEnd end) {
        try {
            for (int k = 0; k < 1000; ++k) end.sync();
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto poisoner = csp::process("poisoner", [](csp::BarrierEnd end) {
        for (int k = 0; k < 10; ++k) end.sync();
        csp::sleep(std::chrono::milliseconds(20));  // (the others wait in the next phase meanwhile)
        end.poison();
        return 1;
    });
    csp::Barrier b{"poisoned"};
    std::vector<csp::Process<int>> waiters;
    for (int r = 0; r < ranks(); ++r) waiters.push_back(waiter(b.end()));
    auto [poisoned, done] = csp::Parallel(csp::spread(std::move(waiters)), csp::on_rank(last, poisoner(b.end())));
    CHECK(done == 1);
    CHECK(std::accumulate(poisoned.begin(), poisoned.end(), 0) == ranks());
}

TEST_CASE("a barrier shared by ranks: a member that fails poisons it (the unwinding rule) on every rank",
          "[mpi][barrier]") {
    auto waiter = csp::process("unwound-waiter", [](csp::BarrierEnd end) {
        try {
            for (int k = 0; k < 1000; ++k) end.sync();
        } catch (const csp::ChannelPoisonException&) {
        }
    });
    auto failing = csp::process("failing-member", [](csp::BarrierEnd end) {
        for (int k = 0; k < 5; ++k) end.sync();
        throw std::runtime_error("member failed");
    });
    csp::Barrier b{"unwound"};
    std::vector<csp::Process<>> waiters;
    for (int r = 0; r < ranks(); ++r) waiters.push_back(waiter(b.end()));
    try {
        csp::Parallel(csp::spread(std::move(waiters)), csp::on_rank(0, failing(b.end())));
        FAIL("no ProcessError");
    } catch (const csp::ProcessError& e) {
        CHECK(std::string(e.what()).find("failing-member") != std::string::npos);
    }
}

TEST_CASE("alting barriers across ranks: members in choices and at plain syncs, no phase overlaps",
          "[mpi][barrier][alt]") {
    const std::int64_t phases = 60;
    // A chooser offers the barrier beside a timeout that never comes first;
    // a plain member syncs. Both note their times as in the test above.
    auto chooser = csp::process("alting", [](csp::BarrierEnd end, std::int64_t phases) {
        std::vector<std::int64_t> times;
        for (std::int64_t k = 0; k < phases; ++k) {
            times.push_back(now_ns());
            const auto r = csp::PriSelect(csp::BarrierGuard(end), csp::TimeoutGuard(std::chrono::seconds(60)));
            if (r.index() != 0) return std::vector<std::int64_t>{};
            times.push_back(now_ns());
        }
        return times;
    });
    auto& plain = phased;
    for (const bool all_choosers : {true, false}) {
        CAPTURE(all_choosers);
        csp::Barrier phase{std::string("alting-") + (all_choosers ? "all" : "mixed")};
        std::vector<csp::Process<std::vector<std::int64_t>>> members;
        for (int m = 0; m < 2 * ranks(); ++m) {
            members.push_back(all_choosers || m % 2 == 0 ? chooser(phase.end(), phases) : plain(phase.end(), phases));
        }
        auto times = std::get<0>(csp::Parallel(csp::spread(std::move(members))));
        CHECK(overlapping_phases(times, phases) == 0);
    }
}

TEST_CASE("alting barriers across ranks: choices over the barrier and a channel each, every value read once",
          "[mpi][barrier][alt]") {
    const int phases = 40, values = 30;
    // Each member alts over the barrier (until it has done its phases) and
    // its own channel (until it retires), fed from another rank.
    auto member = csp::process("alting-reader", [](csp::BarrierEnd end, csp::ChannelIn<int> data, int phases) {
        int done = 0, got = 0;
        bool open = true;
        while (done < phases || open) {
            try {
                const auto r = csp::PriSelect(csp::BarrierGuard(end).when(done < phases), csp::InputGuard(data).when(open));
                if (r.index() == 0) ++done;
                else got += std::get<1>(r) == got ? 1 : 1000;  // (in order)
            } catch (const csp::ChannelRetireException&) {
                open = false;
            }
        }
        return std::pair<int, int>{done, got};
    });
    auto feeder = csp::process("alting-feeder", [](csp::ChannelOut<int> out, int values) {
        for (int v = 0; v < values; ++v) out(v);
    });
    csp::Barrier b{"alting-with-channels"};
    const int members = 2 * ranks();
    std::vector<csp::Channel<int>> chans;
    for (int m = 0; m < members; ++m) chans.emplace_back("alting-data-" + std::to_string(m));
    std::vector<csp::Process<std::pair<int, int>>> ms;
    std::vector<csp::Process<>> fs;
    for (int m = 0; m < members; ++m) {
        ms.push_back(csp::on_rank(m % ranks(), member(b.end(), chans[m].reader(), phases)));
        fs.push_back(csp::on_rank((m + 1) % ranks(), feeder(chans[m].writer(), values)));
    }
    auto [got, fed] = csp::Parallel(std::move(ms), std::move(fs));
    (void)fed;
    for (const auto& [done, n] : got) {
        CHECK(done == phases);
        CHECK(n == values);
    }
}

TEST_CASE("alting barriers across ranks: a rank ahead of the home whose uncounted chooser goes elsewhere, and whose "
          "counted member offers instead, completes the phase",
          "[mpi][barrier][alt]") {
    // Rank h's member offers the barrier late; every other rank is ahead
    // of h in the SPMD part (its member of the first Parallel is gone at
    // once). There a chooser holding an end made in the next Parallel (not
    // counted while the home, when it is h, has not made it) offers the
    // barrier or a channel; a member made in a process from the barrier's
    // handle (counted) waits, writes the channel (the chooser takes it and
    // goes), then offers the barrier. That offer and h's make the phase:
    // the home must not leave it out as one of the uncounted offers an
    // earlier round found there (it did: both waited until their
    // timeouts). A spacer barrier moves the next home along, so that some
    // iteration has h as the home on 2, 3 and 4 ranks.
    auto late = csp::process("offers-late", [](csp::BarrierEnd end, bool offers) {
        if (!offers) return 0;
        csp::sleep(std::chrono::milliseconds(100));
        return csp::PriSelect(csp::BarrierGuard(end), csp::TimeoutGuard(std::chrono::seconds(30))).index() == 0 ? 1 : -1;
    });
    auto chooser = csp::process("ahead-chooser", [](csp::BarrierEnd end, csp::ChannelIn<int> go, csp::ChannelOut<int> gone) {
        const bool went = csp::PriSelect(csp::BarrierGuard(end), csp::InputGuard(go)).index() == 1;
        gone(1);  // (its offer of the barrier is withdrawn by now)
        return went ? 1 : -1;
    });
    auto copier = csp::process("ahead-copy", [](csp::Barrier handle, csp::ChannelOut<int> go, csp::ChannelIn<int> gone) {
        csp::BarrierEnd mine = handle.end();
        csp::sleep(std::chrono::milliseconds(300));
        go(1);
        gone();
        return csp::PriSelect(csp::BarrierGuard(mine), csp::TimeoutGuard(std::chrono::seconds(30))).index() == 0 ? 1 : -1;
    });
    auto ahead = csp::process("ahead", [chooser, copier](csp::BarrierEnd end, csp::Barrier handle) {
        csp::Channel<int> go{"go"}, gone{"gone"};  // (made in a process: its rank's own)
        auto [chose, copied] = csp::Parallel(chooser(std::move(end), go.reader(), gone.writer()),
                                             copier(handle, go.writer(), gone.reader()));
        return chose + copied;
    });
    for (int h = 0; h < ranks(); ++h) {
        CAPTURE(h);
        csp::Barrier b{"ahead-of-" + std::to_string(h)};
        auto [offered] = csp::Parallel(late(b.end(), csp::mpi::rank() == h));
        CHECK(offered == (csp::mpi::rank() == h ? 1 : 0));
        std::vector<csp::Process<int>> others;
        for (int r = 0; r < ranks(); ++r) {
            if (r != h) others.push_back(csp::on_rank(r, ahead(b.end(), b)));
        }
        const std::vector<int> done = csp::Parallel(std::move(others));
        for (const int d : done) CHECK(d == 2);
        csp::Barrier spacer{"ahead-spacer-" + std::to_string(h)};
    }
}

TEST_CASE("alting barriers across ranks: poison from one rank reaches the choices offering it", "[mpi][barrier][alt]") {
    auto chooser = csp::process("poisoned-chooser", [](csp::BarrierEnd end) {
        try {
            for (int k = 0; k < 1000; ++k) csp::Alternation(csp::BarrierGuard(end)).execute();
        } catch (const csp::ChannelPoisonException&) {
            return 1;
        }
        return 0;
    });
    auto poisoner = csp::process("alt-poisoner", [](csp::BarrierEnd end) {
        for (int k = 0; k < 10; ++k) end.sync();
        csp::sleep(std::chrono::milliseconds(20));
        end.poison();
        return 1;
    });
    csp::Barrier b{"alt-poisoned"};
    std::vector<csp::Process<int>> choosers;
    for (int r = 0; r < ranks(); ++r) choosers.push_back(chooser(b.end()));
    auto [poisoned, done] = csp::Parallel(csp::spread(std::move(choosers)), csp::on_rank(ranks() - 1, poisoner(b.end())));
    CHECK(done == 1);
    CHECK(std::accumulate(poisoned.begin(), poisoned.end(), 0) == ranks());
}

TEST_CASE("a csp::multiprocess handed an end of a barrier shared by ranks: a UsageError naming it, no hang",
          "[mpi][barrier]") {
    csp::Barrier b{"to-child-barrier"};
    auto child = csp::multiprocess("barrier-child", [](csp::BarrierEnd end) {
        end.sync();
        return 1;
    });
    auto partner = csp::process("barrier-partner", [](csp::BarrierEnd end) {
        try {
            end.sync();
            return 0;
        } catch (const csp::ChannelPoisonException&) {
            return 1;  // the refused child's barrier is poisoned
        }
    });
    if (ranks() == 1) {
        auto [a, c] = csp::Parallel(child(b.end()), partner(b.end()));
        CHECK(a == 1);
        CHECK(c == 0);
        return;
    }
    try {
        csp::Parallel(csp::on_rank(ranks() - 1, child(b.end())), csp::on_rank(0, partner(b.end())));
        FAIL("no ProcessError");
    } catch (const csp::ProcessError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("'to-child-barrier' is shared by MPI ranks") != std::string::npos);
    }
}

TEST_CASE("a deadlock at a barrier shared by ranks is a DeadlockError on every rank", "[mpi][barrier][deadlock]") {
    // Two members wait at the barrier for a third, which waits for a value
    // that one of them would write after the phase.
    csp::Channel<int> never{"never-written"};
    auto syncer = csp::process("syncs-then-writes", [](csp::BarrierEnd end, csp::ChannelOut<int> out) {
        end.sync();
        out(1);
    });
    auto plain = csp::process("syncs", [](csp::BarrierEnd end) { end.sync(); });
    auto reader = csp::process("reads-then-syncs", [](csp::BarrierEnd end, csp::ChannelIn<int> in) {
        in();
        end.sync();
    });
    csp::Barrier b{"deadlocked-barrier"};
    try {
        csp::Parallel(csp::on_rank(0, syncer(b.end(), never.writer())), csp::on_rank(ranks() - 1, plain(b.end())),
                      csp::on_rank(ranks() / 2, reader(b.end(), never.reader())));
        FAIL("no DeadlockError");
    } catch (const csp::DeadlockError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("reads-then-syncs") != std::string::npos);
        CHECK(what.find("syncs-then-writes") != std::string::npos);
    }
}

// A remote writer's large vector or string is sent from where it lies
// while the writer waits (not packed first): every one intact, unbuffered
// and buffered; and a writer whose large value the home's reader poisons
// instead of taking gets the poison, its value left with it.
TEST_CASE("large vectors and strings written on one rank are read intact on another; poison reaches their writer",
          "[mpi]") {
    const int buffer = GENERATE(0, 2);
    CAPTURE(buffer);
    constexpr int kCount = 20;
    const auto doubles = [](int i) {
        std::vector<double> v(static_cast<std::size_t>(10000 + 997 * i));
        for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>(k) * 0.5 - i;
        return v;
    };
    const auto text = [](int i) { return std::u16string(static_cast<std::size_t>(20000 + 4099 * i), u'a' + i % 26); };
    auto numbers = buffer ? csp::Channel<std::vector<double>>{"large-doubles", csp::buffer(buffer)}
                          : csp::Channel<std::vector<double>>{"large-doubles"};
    auto words = buffer ? csp::Channel<std::u16string>{"large-text", csp::buffer(buffer)}
                        : csp::Channel<std::u16string>{"large-text"};
    auto write = csp::process("large-writer", [&](csp::ChannelOut<std::vector<double>> out,
                                                  csp::ChannelOut<std::u16string> out_text) {
        for (int i = 0; i < kCount; ++i) {
            out(doubles(i));
            out_text(text(i));
        }
    });
    auto read = csp::process("large-reader", [&](csp::ChannelIn<std::vector<double>> in,
                                                 csp::ChannelIn<std::u16string> in_text) {
        int intact = 0;
        for (int i = 0; i < kCount; ++i) {
            intact += in() == doubles(i) ? 1 : 0;
            intact += in_text() == text(i) ? 1 : 0;
        }
        return intact;
    });
    auto [nothing, intact] = csp::Parallel(csp::on_rank(ranks() - 1, write(numbers.writer(), words.writer())),
                                           csp::on_rank(0, read(numbers.reader(), words.reader())));
    (void)nothing;
    CHECK(intact == 2 * kCount);

    csp::Channel<std::vector<char>> poisoned{"large-poisoned"};
    auto keep_writing = csp::process("keeps-writing", [](csp::ChannelOut<std::vector<char>> out) {
        int written = 0;
        std::vector<char> value(1 << 20, 'p');
        try {
            for (;;) {
                out(value);
                ++written;
            }
        } catch (const csp::ChannelPoisonException&) {
        }
        return written == 1 && value == std::vector<char>(1 << 20, 'p');
    });
    auto take_one_then_poison = csp::process("takes-one", [](csp::ChannelIn<std::vector<char>> in) {
        const bool intact = in() == std::vector<char>(1 << 20, 'p');
        csp::sleep(std::chrono::milliseconds(20));  // (the second write waits at the home)
        in.poison();
        return intact;
    });
    auto [writer_ok, reader_ok] = csp::Parallel(csp::on_rank(ranks() - 1, keep_writing(poisoned.writer())),
                                                csp::on_rank(0, take_one_then_poison(poisoned.reader())));
    CHECK(writer_ok);
    CHECK(reader_ok);
}

// A large vector's write across ranks is sent from where it lies; a wait
// that a deadlock ends must not let the value go while MPI may still read
// it (the writer waits for the send to complete too): the DeadlockError
// comes, on every rank, and nothing hangs or crashes.
TEST_CASE("a writer of a large vector caught in a deadlock across ranks gets the DeadlockError", "[mpi][deadlock]") {
    csp::Channel<std::vector<char>> big{"deadlocked-big"};
    csp::Channel<int> other{"deadlocked-other"};
    auto writes = csp::process("writes-big-then-other",
                               [](csp::ChannelOut<std::vector<char>> out, csp::ChannelOut<int> then) {
                                   out(std::vector<char>(1 << 20, 'd'));
                                   then(1);
                               });
    auto reads = csp::process("reads-other-then-big",
                              [](csp::ChannelIn<int> first, csp::ChannelIn<std::vector<char>> in) {
                                  first();
                                  return in().size();
                              });
    CHECK_THROWS_AS(csp::Parallel(csp::on_rank(ranks() - 1, writes(big.writer(), other.writer())),
                                  csp::on_rank(0, reads(other.reader(), big.reader()))),
                    csp::DeadlockError);
}

TEST_CASE("a 100 MB value crosses ranks intact", "[mpi][big]") {
    csp::Channel<std::vector<char>> ch{"big"};
    const std::size_t size = 100u << 20;
    auto send = csp::process([size](csp::ChannelOut<std::vector<char>> out) {
        std::vector<char> v(size);
        for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<char>((i * 2654435761u) >> 13);
        out(std::move(v));
    });
    auto take = csp::process([size](csp::ChannelIn<std::vector<char>> in) {
        const std::vector<char> v = in();
        if (v.size() != size) return false;
        for (std::size_t i = 0; i < size; ++i) {
            if (v[i] != static_cast<char>((i * 2654435761u) >> 13)) return false;
        }
        return true;
    });
    auto [nothing, intact] = csp::Parallel(csp::on_rank(0, send(ch.writer())), csp::on_rank(ranks() - 1, take(ch.reader())));
    (void)nothing;
    CHECK(intact);
}

TEST_CASE("a deadlock across ranks is a DeadlockError on every rank naming the processes of every rank",
          "[mpi][deadlock]") {
    csp::Channel<int> a{"deadlock-a"}, b{"deadlock-b"};
    auto one = csp::process("reads-a-then-writes-b", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        out(in());
    });
    auto other = csp::process("reads-b-then-writes-a", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        out(in());
    });
    try {
        csp::Parallel(csp::on_rank(0, one(a.reader(), b.writer())),
                      csp::on_rank(ranks() - 1, other(b.reader(), a.writer())));
        FAIL("no DeadlockError");
    } catch (const csp::DeadlockError& e) {
        const std::string what = e.what();
        CAPTURE(what);
        CHECK(what.find("reads-a-then-writes-b") != std::string::npos);
        CHECK(what.find("reads-b-then-writes-a") != std::string::npos);
    }
}

TEST_CASE("a choice across ranks drains what was buffered before its writers retired", "[mpi][alt][retire]") {
    // The chooser waits first; then a writer fills every buffer and leaves.
    // One of the channels has its home on the writer's rank, where the
    // chooser's offer waits while the values are buffered past it.
    std::vector<csp::Channel<std::int64_t>> chans;
    for (int c = 0; c < ranks(); ++c) chans.emplace_back("drained-" + std::to_string(c), csp::buffer(2));
    auto filler = csp::process([](std::vector<csp::ChannelOut<std::int64_t>> outs) {
        csp::sleep(std::chrono::milliseconds(100));
        std::int64_t w = 0;
        for (auto& out : outs) {
            out(w * kPer);
            out(w * kPer + 1);
            ++w;
        }
    });
    std::vector<csp::ChannelOut<std::int64_t>> outs;
    std::vector<csp::ChannelIn<std::int64_t>> ins;
    for (auto& ch : chans) {
        outs.push_back(ch.writer());
        ins.push_back(ch.reader());
    }
    auto [nothing, got] = csp::Parallel(csp::on_rank(0, filler(std::move(outs))),
                                        csp::on_rank(ranks() - 1, merger(std::move(ins), false)));
    (void)nothing;
    check_every_id_once(std::move(got), ranks(), 2);
}

TEST_CASE("a choice over both ends of a channel homed elsewhere does not meet itself", "[mpi][alt]") {
    csp::Channel<int> c{"both-ends-alone"};
    auto alone = csp::process([](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
        const auto r = csp::PriSelect(csp::InputGuard(in), csp::OutputGuard(out, 1),
                                      csp::TimeoutGuard(std::chrono::milliseconds(200)));
        return static_cast<int>(r.index());
    });
    CHECK(std::get<0>(csp::Parallel(csp::on_rank(ranks() - 1, alone(c.reader(), c.writer())))) == 2);
}

TEST_CASE("choices across ranks that nobody can serve are a DeadlockError on every rank, and lose nothing after",
          "[mpi][deadlock][alt]") {
    // Two choosers, on different ranks, each over two channels the other
    // (and nobody else) would write only after its own choice. After the
    // deadlock each goes on: one writes, the other reads it, once.
    csp::Channel<int> a{"alt-deadlock-a"}, b{"alt-deadlock-b"}, c{"alt-deadlock-c"}, d{"alt-deadlock-d"};
    auto chooser = unserved_chooser("alt-deadlocked");
    auto [one, two] = csp::Parallel(csp::on_rank(0, chooser(a.reader(), b.reader(), d.writer(), c.reader(), true)),
                                    csp::on_rank(ranks() - 1, chooser(c.reader(), d.reader(), a.writer(), d.reader(), false)));
    CHECK(one == 100);
    CHECK(two == 107);
}

TEST_CASE("a process that catches a DeadlockError across ranks and reads again gets what is written next",
          "[mpi][deadlock]") {
    // Its read from before the deadlock, which waited at the channel's home
    // on another rank, must not take that value (it would be lost). Three
    // rounds, with channels made one after the other: on any number of ranks
    // the channel read from the last rank has its home elsewhere in one.
    csp::Channel<int> r0{"retry-0"}, r1{"retry-1"}, r2{"retry-2"};
    csp::Channel<int> y0{"cycle-0"}, y1{"cycle-1"}, y2{"cycle-2"};
    auto retrier = csp::process("retrier", [](csp::ChannelIn<int> in, csp::ChannelOut<int>) {
        try {
            return in();  // (blocked: the answerer waits for us, through the end we hold)
        } catch (const csp::DeadlockError&) {
            return in();
        }
    });
    auto answerer = csp::process("answerer", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out, int v) {
        try {
            (void)in();
        } catch (const csp::DeadlockError&) {
            out(v);
        }
        return v;
    });
    const int last = ranks() - 1;
    const std::pair<csp::Channel<int>*, csp::Channel<int>*> rounds[] = {{&r0, &y0}, {&r1, &y1}, {&r2, &y2}};
    int v = 10;
    for (auto [r, y] : rounds) {
        ++v;
        auto [got, sent] = csp::Parallel(csp::on_rank(last, retrier(r->reader(), y->writer())),
                                         csp::on_rank(0, answerer(y->reader(), r->writer(), v)));
        CHECK(got == v);
        CHECK(sent == v);
    }
}

TEST_CASE("a rank that computes for a while is no deadlock for the ranks waiting for it", "[mpi][deadlock]") {
    csp::Channel<int> answer{"slow-answer"};
    auto slow = csp::process("slow", [](csp::ChannelOut<int> out) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        std::uint64_t spins = 0;
        while (std::chrono::steady_clock::now() < until) ++spins;  // no pause, no message
        out(42);
        return spins > 0;
    });
    auto wait = csp::process("waiting", [](csp::ChannelIn<int> in) { return in(); });
    auto [spun, got] = csp::Parallel(csp::on_rank(ranks() - 1, slow(answer.writer())), csp::on_rank(0, wait(answer.reader())));
    CHECK(spun);
    CHECK(got == 42);
}

TEST_CASE("misplaced placements are usage errors: copies of a placed process, placing from inside a process", "[mpi]") {
    if (ranks() == 1) {
        SUCCEED("one rank: a placement is the process itself");
        return;
    }
    auto work = csp::process("work", [] { return 1; });
    CHECK_THROWS_AS(csp::on_rank(0, work()) * 2, csp::UsageError);
    auto placer = csp::process("placer", [work] {
        try {
            (void)csp::on_rank(0, work());
        } catch (const csp::UsageError&) {
            return true;
        }
        return false;
    });
    CHECK(std::get<0>(csp::Parallel(placer())));
}

// A simulation (csp/sim.hpp) runs processes placed on ranks here, as fibers,
// whatever their rank and however many ranks the job has: a network written
// for several ranks is checked in one OS process. (On 2 and 4 ranks every
// rank runs its own simulations, which never reach MPI.)
TEST_CASE("a simulation runs placed processes here, as fibers, whatever their rank", "[mpi][sim]") {
    int runs = 0;
    csp::sim::check_random(
        [&runs] {
            ++runs;
            csp::Channel<std::int64_t> ch{"simulated-ranks"};
            std::vector<csp::Process<std::int64_t>> ws;
            for (std::int64_t w = 0; w < 3; ++w) ws.push_back(writer(ch.writer(), w, 4));
            auto [sent, got] = csp::Parallel(csp::spread(std::move(ws)), csp::on_rank(7, reader(ch.reader())));
            if (sent != std::vector<std::int64_t>{4, 4, 4}) throw std::runtime_error("the writers' results are wrong");
            std::sort(got.begin(), got.end());
            std::vector<std::int64_t> every;
            for (std::int64_t w = 0; w < 3; ++w) {
                for (std::int64_t i = 0; i < 4; ++i) every.push_back(w * kPer + i);
            }
            if (got != every) throw std::runtime_error("the reader did not get every value once");
        },
        {.iterations = 40, .seed = 1});
    CHECK(runs == 40);
}

// PyCSP's termination race (tests/sim.cpp) between processes placed on two
// ranks: the simulation finds it, names the process with its rank, and its
// schedule replays it; a deadlock among placed processes is found too.
TEST_CASE("a simulation finds a race and a deadlock among placed processes", "[mpi][sim]") {
    auto racy = [] {
        csp::Channel<int> ch{"poisoned-early", csp::buffer(4)};
        csp::Parallel(csp::on_rank(1, early_poisoner()(ch.writer())), csp::on_rank(2, poisoned_consumer()(ch.reader())));
    };
    std::string what, schedule;
    try {
        csp::sim::check_random(racy, {.iterations = 500, .seed = 1});
    } catch (const csp::sim::Failure& f) {
        what = f.what();
        schedule = f.schedule();
        csp_test::forget_sim_trace(what);
    }
    CAPTURE(what);
    CHECK(what.find("consumer on rank 2") != std::string::npos);
    CHECK(what.find("poison lost values") != std::string::npos);
    REQUIRE_FALSE(schedule.empty());
    try {
        csp::sim::replay(racy, schedule);
        FAIL("the replay did not fail");
    } catch (const csp::sim::Failure& f) {
        csp_test::forget_sim_trace(f.what());
    }

    auto stuck = [] {
        csp::Channel<int> a{"never-written"};
        auto wait = csp::process("waiting", [](csp::ChannelIn<int> in) { return in(); });
        csp::Parallel(csp::on_rank(3, wait(a.reader())));
    };
    try {
        csp::sim::check_random(stuck, {.iterations = 3, .seed = 1});
        FAIL("no deadlock found");
    } catch (const csp::sim::Failure& f) {
        const std::string said = f.what();
        csp_test::forget_sim_trace(said);
        CAPTURE(said);
        CHECK(said.find("waiting on rank 3") != std::string::npos);
    }
}

// csp::write_graph on one rank draws the whole job: every rank a cluster
// (each asked for its part), and a channel shared by ranks one node, with
// the end its reader on another rank holds.
TEST_CASE("write_graph on one rank draws every rank, and a shared channel once", "[mpi][graph]") {
    csp::Channel<int> wire{"graph-wire"};
    auto late = csp::process("late-writer", [](csp::ChannelOut<int> out) {
        csp::sleep(std::chrono::milliseconds(800));
        out(1);
        return true;
    });
    auto blocked = csp::process("blocked-reader", [](csp::ChannelIn<int> in) { return in(); });
    auto watcher = csp::process("watcher", [] {
        csp::sleep(std::chrono::milliseconds(300));  // (the reader in its wait by then)
        const std::string path = "/tmp/csp-mpi-graph-" + std::to_string(::getpid()) + ".dot";
        csp::write_graph(path);
        std::ifstream in(path);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::remove(path.c_str());
        return text;
    });
    auto [wrote, got, text] = csp::Parallel(csp::on_rank(0, late(wire.writer())),
                                            csp::on_rank(ranks() - 1, blocked(wire.reader())),
                                            csp::on_rank(0, watcher()));
    CHECK(wrote);
    CHECK(got == 1);
    CAPTURE(text);
    CHECK(text.find("late-writer") != std::string::npos);
    CHECK(text.find("blocked-reader") != std::string::npos);
    CHECK(text.find("blocked reading") != std::string::npos);
    if (ranks() == 1) return;
    std::size_t clusters = 0;
    for (std::size_t at = text.find("subgraph cluster_os"); at != std::string::npos;
         at = text.find("subgraph cluster_os", at + 1)) {
        ++clusters;
    }
    CHECK(clusters == static_cast<std::size_t>(ranks()));
    for (int r = 0; r < ranks(); ++r) CHECK(text.find("label=\"rank " + std::to_string(r) + ", OS process") != std::string::npos);
    CHECK(text.find("did not answer") == std::string::npos);
    // The channel once, its reader end at the reader on the last rank.
    const std::string wire_node = "label=\"graph-wire\\n";
    REQUIRE(text.find(wire_node) != std::string::npos);
    CHECK(text.find(wire_node, text.find(wire_node) + 1) == std::string::npos);
    CHECK(text.find("[label=\"reader end\"]") != std::string::npos);
}

// A rank with a child OS process (csp::multiprocess): write_graph draws the
// child too, titled with its rank, and the channel between them once.
TEST_CASE("write_graph draws the child OS processes of a rank", "[mpi][graph]") {
    auto family = csp::process("family", [] {
        csp::Channel<int> local{"child-wire"};
        auto child = csp::multiprocess("child-reader", [](csp::ChannelIn<int> in) { return in(); });
        auto parent = csp::process("late-parent", [](csp::ChannelOut<int> out) {
            csp::sleep(std::chrono::milliseconds(1000));
            out(5);
        });
        std::string text;
        auto watcher = csp::process("watcher", [&text] {
            csp::sleep(std::chrono::milliseconds(400));  // (the child blocked reading by then)
            const std::string path = "/tmp/csp-mpi-child-graph-" + std::to_string(::getpid()) + ".dot";
            csp::write_graph(path);
            std::ifstream in(path);
            text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
            std::remove(path.c_str());
        });
        auto [got, a, b] = csp::Parallel(child(local.reader()), parent(local.writer()), watcher());
        (void)a;
        (void)b;
        return got == 5 ? text : std::string("the child read the wrong value");
    });
    auto [text] = csp::Parallel(csp::on_rank(0, family()));
    CAPTURE(text);
    std::size_t clusters = 0;
    for (std::size_t at = text.find("subgraph cluster_os"); at != std::string::npos;
         at = text.find("subgraph cluster_os", at + 1)) {
        ++clusters;
    }
    CHECK(clusters == static_cast<std::size_t>(ranks()) + 1);
    CHECK(text.find("multiprocess 'child-reader'") != std::string::npos);
    CHECK(text.find("did not answer") == std::string::npos);
    if (ranks() > 1) CHECK(text.find("label=\"rank 0, OS process") != std::string::npos);
    const std::string wire_node = "label=\"child-wire\\n";
    REQUIRE(text.find(wire_node) != std::string::npos);
    CHECK(text.find(wire_node, text.find(wire_node) + 1) == std::string::npos);
    CHECK(text.find("blocked reading") != std::string::npos);
}
