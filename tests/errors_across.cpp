// Errors a user reads, across OS processes (release builds only, like the
// rest of the multiprocess suite; see tests/meson.build).
#include "support.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>

using Catch::Contains;

namespace {
csp::Channel<int>* g_smuggled = nullptr;  // reached by the child through a global: not handed over
}

// Story: a child that reaches a channel through a global instead of being
// handed its ends used to see a bare "channel poisoned", the reason only in
// the log. It now fails with a ChannelEndError that says what to do, and the
// channel is poisoned, so its partners here stop too.
TEST_CASE("a channel a multiprocess was not handed fails with a message that says what to do",
          "[multiprocess][errors]") {
    csp::Channel<int> smuggled{"smuggled"};
    g_smuggled = &smuggled;
    auto keep_writer = smuggled.writer();
    auto child = csp::multiprocess("smuggler", [] { return g_smuggled->reader().read(); });
    std::string message;
    try {
        csp::Parallel(child());
        FAIL("Parallel did not throw");
    } catch (const csp::ProcessError& e) {
        message = e.what();
    }
    CAPTURE(message);
    CHECK_THAT(message, Contains("csp::ChannelEndError"));
    CHECK_THAT(message, Contains("channel 'smuggled' is used from an OS process it was not handed to"));
    CHECK_THAT(message, Contains("pass its ends to the csp::multiprocess as arguments"));
    CHECK_THROWS_AS(keep_writer(1), csp::ChannelPoisonException);
    g_smuggled = nullptr;
}

namespace {
// Opaque: movable, but neither trivially copyable nor serializable.
struct Opaque {
    std::unique_ptr<int> p;
};
struct Holder {
    csp::ChannelIn<Opaque> in;
};
}  // namespace

// Story: a channel whose values cannot cross, captured by value in a
// multiprocess lambda or held inside a struct argument, compiled (only
// direct arguments are checked then); the child's read met poison and the
// process "returned 0", so the program printed a wrong answer and exited 0.
// Now the child does not run: a ProcessError names the channel and the
// type, and the channel is poisoned so its partners stop too.
TEST_CASE("a channel whose values cannot cross, captured or inside an argument, is a clear error",
          "[multiprocess][errors]") {
    const bool captured = GENERATE(true, false);
    CAPTURE(captured);
    csp::Channel<Opaque> opaque{"opaque"};
    auto keep_writer = opaque.writer();
    std::string message;
    try {
        if (captured) {
            auto child = csp::multiprocess("captor", [in = opaque.reader()]() mutable { return in.read().p ? 1 : 2; });
            csp::Parallel(child());
        } else {
            auto child = csp::multiprocess("holder", [](Holder h) { return h.in.read().p ? 1 : 2; });
            csp::Parallel(child(Holder{opaque.reader()}));
        }
        FAIL("Parallel did not throw");
    } catch (const csp::ProcessError& e) {
        message = e.what();
    }
    CAPTURE(message);
    CHECK_THAT(message, Contains("csp::UsageError"));
    CHECK_THAT(message, Contains("channel 'opaque' carries values of type"));
    CHECK_THAT(message, Contains("Opaque, which cannot cross OS processes"));
    CHECK_THAT(message, Contains(captured ? "'captor'" : "'holder'"));
    CHECK_THROWS_AS(keep_writer(Opaque{}), csp::ChannelPoisonException);
    CHECK(csp_test::unreaped_children() == "");
}

namespace {
// Fragile: a value whose serialization throws for negative numbers.
struct Fragile {
    int v = 0;
    std::string tag = "fragile";  // (not trivially copyable: cereal packs it)
    template <class Archive>
    void serialize(Archive& archive) {
        if (v < 0) throw std::runtime_error("cannot pack " + std::to_string(v));
        archive(v, tag);
    }
};
}  // namespace

// Story: a value whose serialization throws was lost silently: the write
// returned normally and Parallel succeeded. Now the writer gets the
// exception its serialization threw, nothing is sent, and the channel stays
// usable: the reader in the other OS process sees exactly the good values.
TEST_CASE("a value whose serialization throws is the writer's error, and nothing is lost",
          "[multiprocess][errors][values]") {
    const int buffer = GENERATE(0, 2);
    CAPTURE(buffer);
    csp::Channel<Fragile> channel{"fragile", csp::buffer(buffer)};
    // (The child says it has started, so that every write below is made on
    // a channel that already crosses: a value buffered before, packed when
    // the fork marks the channel, has no writer left to tell; it travels as
    // lost and the reader is poisoned, which the log explains.)
    csp::Channel<int> started{"fragile-started"};
    auto reader = csp::multiprocess("fragile-reader", [](csp::ChannelIn<Fragile> in, csp::ChannelOut<int> up) {
        up(1);
        std::vector<int> seen;
        try {
            for (;;) seen.push_back(in().v);
        } catch (const csp::ChannelRetireException&) {
        }
        return seen;
    });
    auto writer = csp::process("fragile-writer", [](csp::ChannelOut<Fragile> out, csp::ChannelIn<int> up) {
        up();
        int refused = 0;
        out(Fragile{1});
        try {
            out(Fragile{-1});
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "cannot pack -1") ++refused;
        }
        out(Fragile{2});
        try {
            (void)csp::AltSelect(csp::OutputGuard(out, Fragile{-2}));
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "cannot pack -2") ++refused;
        }
        // A good guard beside a bad one that comes first: still the chooser's error.
        try {
            (void)csp::PriSelect(csp::OutputGuard(out, Fragile{-3}), csp::OutputGuard(out, Fragile{99}));
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == "cannot pack -3") ++refused;
        }
        auto r = csp::PriSelect(csp::OutputGuard(out, Fragile{3}));
        out(Fragile{4});
        return refused * 10 + static_cast<int>(r.index());
    });
    const auto [seen, refused] = csp::Parallel(reader(channel.reader(), started.writer()),
                                                writer(channel.writer(), started.reader()));
    CHECK(refused == 30);
    CHECK(seen == std::vector<int>{1, 2, 3, 4});
    CHECK(csp_test::unreaped_children() == "");
}
