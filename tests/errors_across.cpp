// Errors a user reads, across OS processes (release builds only, like the
// rest of the multiprocess suite; see tests/meson.build).
#include "support.hpp"

#include <catch2/catch.hpp>

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
