// Errors a user reads: each kind of misuse and each way a network can stop
// gets its own exception type and a message that says what happened, in
// the words of the API (not the runtime's). Every case checks the text.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using Catch::Contains;
using csp_test::deadlock_report;

TEST_CASE("misuse that is not about a channel end is a UsageError that says what to do", "[errors]") {
    CHECK_THROWS_AS(csp::buffer(-1), csp::UsageError);
    CHECK_THROWS_WITH(csp::buffer(-1), Contains("capacity must be between 0 and"));

    auto body = csp::process([] {});
    auto p = body();
    auto moved = std::move(p);
    CHECK_THROWS_AS(csp::Parallel(std::move(p)), csp::UsageError);
    CHECK_THROWS_WITH(csp::Parallel(std::move(p)), Contains("moved-from Process"));
    csp::Parallel(std::move(moved));

}

TEST_CASE("a buffer kind with no room or absurd room is a UsageError that says so", "[errors][buffer-kinds]") {
    for (long long bad : {0LL, -1LL}) {
        CHECK_THROWS_AS(csp::overwriting_buffer(bad), csp::UsageError);
        CHECK_THROWS_AS(csp::dropping_buffer(bad), csp::UsageError);
    }
    CHECK_THROWS_WITH(csp::overwriting_buffer(0), Contains("holds at least 1 value"));
    CHECK_THROWS_WITH(csp::dropping_buffer(0), Contains("csp::dropping_buffer(0)"));
    CHECK_THROWS_WITH(csp::dropping_buffer(1LL << 40), Contains("capacity must be between 0 and"));
    CHECK_THROWS_AS(csp::Channel<int>(csp::Buffer{0, csp::channels::BufferKind::Overwriting}), csp::UsageError);
    // Fine: the smallest of each, and an infinite buffer.
    csp::Channel<int> a{csp::overwriting_buffer(1)}, b{csp::dropping_buffer(1)}, c{csp::infinite_buffer()};
    auto aw = a.writer();
    auto ar = a.reader();
    aw(1);
    aw(2);
    CHECK(ar() == 2);
    auto bw = b.writer();
    auto br = b.reader();
    bw(1);
    bw(2);
    CHECK(br() == 1);
    auto cw = c.writer();
    auto cr = c.reader();
    for (int i = 0; i < 100000; ++i) cw(i);  // (grows from 16, keeping the order)
    bool in_order = true;
    for (int i = 0; i < 100000; ++i) in_order &= cr() == i;
    CHECK(in_order);
}

TEST_CASE("a choice over an empty vector of guards says so", "[errors]") {
    // (A ChannelRetireException, as if every guard had retired: a server
    // alting over a vector of its clients ends normally when none is left.)
    std::vector<csp::InputGuard<int>> none;
    CHECK_THROWS_AS(csp::PriSelect(none), csp::ChannelRetireException);
    CHECK_THROWS_WITH(csp::FairSelect(none), Contains("a choice over an empty std::vector of guards"));
}

TEST_CASE("an empty end is a ChannelEndError that names where ends come from", "[errors]") {
    csp::ChannelIn<int> empty;
    CHECK_THROWS_AS(empty.read(), csp::ChannelEndError);
    CHECK_THROWS_WITH(empty.read(), Contains("Channel::reader()/writer()"));
}

TEST_CASE("an end used after its own retire says so, unlike a peer's retire", "[errors]") {
    csp::Channel<int> own{"own-retire"};
    auto keep = own.writer();
    auto in = own.reader();
    auto other = own.reader();
    in.retire();
    CHECK_THROWS_AS(in.read(), csp::ChannelRetireException);
    CHECK_THROWS_WITH(in.read(), Contains("this end of channel 'own-retire' was retired by its own retire()"));

    csp::Channel<int> peer{"peer-retire"};
    auto reader = peer.reader();
    peer.writer().retire();  // the last writer leaves
    CHECK_THROWS_WITH(reader.read(), "channel retired: 'peer-retire'");
}

TEST_CASE("a choice whose channel guards are all retired names them", "[errors]") {
    csp::Channel<int> a{"gone-a"}, b{"gone-b"};
    auto in_a = a.reader();
    auto in_b = b.reader();
    a.writer().retire();
    b.writer().retire();
    try {
        csp::PriSelect(csp::InputGuard(in_a), csp::InputGuard(in_b));
        FAIL("the choice did not throw");
    } catch (const csp::ChannelRetireException& e) {
        CHECK_THAT(std::string(e.what()), Contains("every enabled channel guard of this choice is retired"));
        CHECK_THAT(std::string(e.what()), Contains("'gone-a', 'gone-b'"));
    }
}

TEST_CASE("a deadlock report says what each process is blocked doing", "[errors][deadlock]") {
    SECTION("a read and a write") {
        csp::Channel<int> in_wire{"never-written"}, out_wire{"never-read"};
        auto reader = csp::process("the-reader", [](csp::ChannelIn<int> in) { in(); });
        auto writer = csp::process("the-writer", [](csp::ChannelOut<int> out) { out(1); });
        const std::string report = deadlock_report(
            [&] { csp::Parallel(reader(in_wire.reader()), writer(out_wire.writer())); });
        CAPTURE(report);
        CHECK_THAT(report, Contains("process 'the-reader' is blocked reading from channel 'never-written'"));
        CHECK_THAT(report, Contains("process 'the-writer' is blocked writing to channel 'never-read'"));
        CHECK_THAT(report, Contains("process 'main' is waiting for the processes it runs to end"));
    }
    SECTION("a choice") {
        csp::Channel<int> a{"alt-a"}, b{"alt-b"};
        auto chooser = csp::process("the-chooser", [](csp::ChannelIn<int> x, csp::ChannelIn<int> y) {
            csp::PriSelect(csp::InputGuard(x), csp::InputGuard(y));
        });
        auto keep = csp::process("keeper", [](csp::ChannelOut<int>, csp::ChannelOut<int>,
                                                csp::ChannelIn<int> never) { never(); });
        csp::Channel<int> never{"keeper-wire"};
        const std::string report = deadlock_report([&] {
            csp::Parallel(chooser(a.reader(), b.reader()), keep(a.writer(), b.writer(), never.reader()));
        });
        CAPTURE(report);
        CHECK_THAT(report, Contains("process 'the-chooser' is blocked in a choice over channels 'alt-a', 'alt-b'"));
        CHECK_THAT(report, !Contains("blocked on channel 'alternation"));
    }
}
