// How a network shuts down: retire and poison passing through a pipeline of
// processes in both directions (the unwinding rule of API.md), a failing
// process poisoning its neighbours, and csp::ProcessError.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using csp_test::Ending;

namespace {

// A stage records how it ended, then lets the exception go on: the runtime
// must see it unwind from that exception to retire or poison the stage's ends.
template <class Body>
void recording(std::atomic<Ending>* ending, Body&& body) {
    try {
        body();
        *ending = Ending::normally;
    } catch (const csp::ChannelRetireException&) {
        *ending = Ending::retired;
        throw;
    } catch (const csp::ChannelPoisonException&) {
        *ending = Ending::poisoned;
        throw;
    } catch (...) {
        *ending = Ending::failed;
        throw;
    }
}

// The source writes `count` values (forever when count < 0), then poisons its
// end if asked, and ends (its end is destroyed with its arguments).
constexpr auto source = [](csp::ChannelOut<int> out, int count, bool poison_at_end, std::atomic<Ending>* ending) {
    recording(ending, [&] {
        for (int i = 0; count < 0 || i < count; ++i) out(i);
        if (poison_at_end) out.poison();
    });
};

constexpr auto stage = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out, std::atomic<Ending>* ending) {
    recording(ending, [&] {
        for (;;) out(in() + 1);
    });
};

// A stage that fails with an ordinary exception after passing `good` values.
constexpr auto failing_stage = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out, int good,
                                  std::atomic<Ending>* ending) {
    recording(ending, [&] {
        for (int i = 0; i < good; ++i) out(in() + 1);
        throw std::runtime_error("stage failed on purpose");
    });
};

enum class SinkEnd { keep_reading, retire_after_limit, poison_after_limit };

// The sink reads until its input ends, or reads `limit` values and then
// retires or poisons its end. It counts what it read and sums it.
constexpr auto sink = [](csp::ChannelIn<int> in, int limit, SinkEnd how, int* count, long* sum,
                         std::atomic<Ending>* ending) {
    recording(ending, [&] {
        while (how == SinkEnd::keep_reading || *count < limit) {
            *sum += in();
            ++*count;
        }
        if (how == SinkEnd::retire_after_limit) in.retire();
        if (how == SinkEnd::poison_after_limit) in.poison();
    });
};

constexpr int stages = 5;

// A pipeline source -> stages x stage -> sink over unbuffered channels. The
// result holds how every process ended: [0] the source, [1..stages] the stages,
// [stages + 1] the sink.
struct Pipeline {
    std::vector<csp::Channel<int>> wires;
    std::atomic<Ending> endings[stages + 2];
    int count = 0;
    long sum = 0;

    Pipeline() {
        for (int i = 0; i <= stages; ++i) wires.emplace_back(("wire-" + std::to_string(i)).c_str());
        for (auto& ending : endings) ending = Ending::running;
    }

    // The stage at `failing_at` (1..stages) fails after `good` values; 0: none.
    void run(int source_count, bool poison_at_end, int limit, SinkEnd how, int failing_at = 0, int good = 0) {
        std::vector<csp::Process<>> processes;
        processes.push_back(csp::process(source)(wires[0].writer(), source_count, poison_at_end, &endings[0]));
        for (int i = 1; i <= stages; ++i) {
            if (i == failing_at)
                processes.push_back(csp::process(failing_stage)(wires[i - 1].reader(), wires[i].writer(), good, &endings[i]));
            else
                processes.push_back(csp::process(stage)(wires[i - 1].reader(), wires[i].writer(), &endings[i]));
        }
        processes.push_back(csp::process(sink)(wires[stages].reader(), limit, how, &count, &sum, &endings[stages + 1]));
        csp::Parallel(std::move(processes));
    }
};

}  // namespace

TEST_CASE("retire from the source passes down a pipeline; nothing is lost", "[termination][pipeline]") {
    Pipeline pipeline;
    pipeline.run(1000, false, 0, SinkEnd::keep_reading);
    CHECK(pipeline.count == 1000);
    CHECK(pipeline.sum == 1000L * 999 / 2 + 1000L * stages);
    CHECK(pipeline.endings[0].load() == Ending::normally);
    for (int i = 1; i <= stages + 1; ++i) {
        CAPTURE(i);
        CHECK(pipeline.endings[i].load() == Ending::retired);
    }
}

TEST_CASE("poison from the source passes down a pipeline", "[termination][pipeline]") {
    Pipeline pipeline;
    pipeline.run(1000, true, 0, SinkEnd::keep_reading);
    CHECK(pipeline.count <= 1000);
    CHECK(pipeline.endings[0].load() == Ending::normally);
    for (int i = 1; i <= stages + 1; ++i) {
        CAPTURE(i);
        CHECK(pipeline.endings[i].load() == Ending::poisoned);
    }
}

TEST_CASE("retire from the sink passes up a pipeline", "[termination][pipeline]") {
    Pipeline pipeline;
    pipeline.run(-1, false, 10, SinkEnd::retire_after_limit);
    CHECK(pipeline.count == 10);
    CHECK(pipeline.sum == 10L * 9 / 2 + 10L * stages);
    CHECK(pipeline.endings[stages + 1].load() == Ending::normally);
    for (int i = 0; i <= stages; ++i) {
        CAPTURE(i);
        CHECK(pipeline.endings[i].load() == Ending::retired);
    }
}

TEST_CASE("poison from the sink passes up a pipeline", "[termination][pipeline]") {
    Pipeline pipeline;
    pipeline.run(-1, false, 10, SinkEnd::poison_after_limit);
    CHECK(pipeline.count == 10);
    CHECK(pipeline.endings[stages + 1].load() == Ending::normally);
    for (int i = 0; i <= stages; ++i) {
        CAPTURE(i);
        CHECK(pipeline.endings[i].load() == Ending::poisoned);
    }
}

// A process failing with an ordinary exception poisons its ends as it
// unwinds: both neighbours, and through them the whole pipeline, shut down
// instead of staying blocked; Parallel then reports the failure.
TEST_CASE("a failing stage poisons the pipeline both ways and Parallel reports it", "[termination][pipeline][error]") {
    Pipeline pipeline;
    constexpr int failing_at = 3;
    std::string message;
    std::exception_ptr original;
    try {
        pipeline.run(-1, false, 0, SinkEnd::keep_reading, failing_at, 10);
    } catch (const csp::ProcessError& error) {
        message = error.what();
        original = csp_test::original_exception(error);
    }
    CHECK_FALSE(message.empty());
    CHECK(csp_test::message_of(original) == "stage failed on purpose");
    CHECK(pipeline.count == 10);
    for (int i = 0; i <= stages + 1; ++i) {
        CAPTURE(i);
        CHECK(pipeline.endings[i].load() == (i == failing_at ? Ending::failed : Ending::poisoned));
    }
}

TEST_CASE("ProcessError holds the original exception and names the process", "[termination][error]") {
    std::string message;
    std::exception_ptr original;
    std::atomic<bool> neighbour_finished{false};
    auto patient = csp::process([&neighbour_finished] {
        csp::sleep(100ms);
        neighbour_finished = true;
    });
    bool finished_before_rethrow = false;
    // The failing process is made on one line, so however its name is derived
    // from its creation site, that line is in it.
    const int line = __LINE__; auto boom = csp::process([] { throw std::logic_error("boom"); })();
    try {
        csp::Parallel(std::move(boom), patient());
    } catch (const csp::ProcessError& error) {
        finished_before_rethrow = neighbour_finished.load();
        message = error.what();
        original = csp_test::original_exception(error);
    }
    CAPTURE(message);
    CHECK_THAT(message, Catch::Contains(std::to_string(line)));
    REQUIRE(original);
    CHECK_THROWS_AS(std::rethrow_exception(original), std::logic_error);
    CHECK(csp_test::message_of(original) == "boom");
    CHECK(finished_before_rethrow);  // rethrown only after every process ended
}

TEST_CASE("ProcessError passes through nested Parallels", "[termination][error]") {
    auto inner = csp::process([] { throw std::runtime_error("deep"); });
    auto outer = csp::process([&inner] { csp::Parallel(inner()); });
    CHECK_THROWS_AS(csp::Parallel(outer()), csp::ProcessError);
}

TEST_CASE("Sequence reports a failing process as ProcessError", "[termination][error]") {
    std::atomic<int> ran{0};
    auto fine = csp::process([&ran] { ++ran; });
    auto bad = csp::process([] { throw std::runtime_error("bad"); });
    CHECK_THROWS_AS(csp::Sequence(fine(), bad(), fine()), csp::ProcessError);
    CHECK(ran >= 1);
}

// The unwinding rule covers every end a process owns, not only its arguments:
// an end it made itself, or one it received over a channel, is destroyed
// while the process unwinds; that retires it after ChannelRetireException and
// poisons it after anything else.
TEST_CASE("ends a process made or received follow the unwinding rule", "[termination][unwinding]") {
    enum Trigger { retire_trigger, poison_trigger, ordinary_exception };
    const bool received = GENERATE(false, true);
    const int trigger = GENERATE(retire_trigger, poison_trigger, ordinary_exception);
    CAPTURE(received, trigger);

    csp::Channel<int> target{"target"};
    csp::Channel<int> trigger_wire{"trigger"};
    csp::Channel<csp::ChannelOut<int>> end_wire{"end-wire", csp::buffer(1)};
    if (received) end_wire.writer()(target.writer());

    std::atomic<Ending> observed{Ending::running};
    auto holder = csp::process([&](csp::ChannelIn<int> wait_on, csp::ChannelIn<csp::ChannelOut<int>> ends) {
        csp::ChannelOut<int> out = received ? ends() : target.writer();
        out(1);
        if (trigger == ordinary_exception) throw std::runtime_error("holder failed");
        wait_on();  // throws retire or poison
    });
    auto observer = csp::process([&](csp::ChannelIn<int> in) {
        recording(&observed, [&] {
            in();
            in();
        });
    });
    auto controller = csp::process([&](csp::ChannelOut<int> out) {
        csp::sleep(30ms);
        if (trigger == poison_trigger) out.poison();
        // otherwise the controller's end, the last writer end, leaves as it ends
    });

    auto run = [&] {
        csp::Parallel(holder(trigger_wire.reader(), end_wire.reader()), observer(target.reader()),
                      controller(trigger_wire.writer()));
    };
    if (trigger == ordinary_exception)
        CHECK_THROWS_AS(run(), csp::ProcessError);
    else
        CHECK_NOTHROW(run());
    CHECK(observed.load() == (trigger == retire_trigger ? Ending::retired : Ending::poisoned));
}

// The C++ runtime keeps its exception state (std::uncaught_exceptions(), the
// stack of caught exceptions) per OS thread. A fiber that yields while an
// exception unwinds it, or inside a catch block, must keep that state to itself:
// the process that runs next on the worker never threw, so an end it drops
// there leaves normally instead of poisoning its channel.
TEST_CASE("a process that yields while unwinding keeps its exception state to itself", "[termination][unwinding]") {
    csp::Channel<int> untouched{"untouched", csp::buffer(1)};
    std::atomic<int> after_yield_seen{-1}, bystander_seen{-1};
    std::atomic<bool> caught_kept{false}, bystander_clean{false}, own_catch_ok{false};

    struct YieldOnUnwind {
        std::atomic<int>* after;
        ~YieldOnUnwind() {
            csp::yield();
            *after = std::uncaught_exceptions();
        }
    };
    auto thrower = csp::process([&] {
        try {
            YieldOnUnwind y{&after_yield_seen};
            throw 1;
        } catch (int) {
            csp::yield();  // inside the catch block: the caught exception stays ours
            caught_kept = std::current_exception() != nullptr;
        }
    });
    // On one worker the two take turns: the bystander starts while the thrower
    // unwinds, and looks again while the thrower is in its catch block.
    auto bystander = csp::process([&](csp::ChannelOut<int> out) {
        bystander_seen = std::uncaught_exceptions();
        {
            csp::ChannelOut<int> copy = out;  // dropped normally: no poison
        }
        csp::yield();
        bystander_clean = std::current_exception() == nullptr;
        try {
            throw 2;  // an exception of its own, caught while the thrower is suspended in its catch
        } catch (int v) {
            csp::yield();
            own_catch_ok = v == 2 && std::current_exception() != nullptr;
        }
        out(7);
    });
    CHECK_NOTHROW(csp::Parallel(thrower(), bystander(untouched.writer())));
    CHECK(after_yield_seen.load() == 1);
    CHECK(caught_kept.load());
    CHECK(bystander_seen.load() == 0);
    CHECK(bystander_clean.load());
    CHECK(own_catch_ok.load());
    CHECK(untouched.reader()() == 7);  // not poisoned: retired once its writer left
    CHECK_THROWS_AS(untouched.reader()(), csp::ChannelRetireException);
}
