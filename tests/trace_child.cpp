// trace_child: a program for check_trace.py, run with CSP_TRACE set. One
// network with something of each kind the trace shows, its counts known:
//
//   'numbers'    unbuffered, 50 values from one writer to one reader
//   'fifo'       buffered (3), 20 values, its reader slow at first: the
//                writer blocks on a full buffer; a counter of occupancy
//   'latest'     overwriting (2): 10 values written before any is read,
//                8 overwritten, 2 read
//   'doomed'     buffered (4): 3 values written, then poisoned: 3 discarded
//   'left', 'right'  5 values each, read by one choice with a timeout
//   'phase'      a barrier of two, synced 3 times
//   'boom'       a process that throws (ProcessError, caught here)
//   'to-child', 'from-child'  5 values to a multiprocess child and their
//                sum back; the child runs a grandchild that writes 2 values
//                to 'from-grandchild', read by a fiber here: three OS
//                processes in one trace (left out by `trace_child fibers`,
//                for sanitizer builds, where forking is not tested)
//
// Prints nothing on success; exits 1 if the run did not go as planned.
#include <csp/csp.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string_view>

using namespace std::chrono_literals;

namespace {

int fail(const char* what) {
    std::fprintf(stderr, "trace_child: %s\n", what);
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    const bool fork = !(argc > 1 && std::string_view(argv[1]) == "fibers");
    csp::Channel<int> numbers{"numbers"}, fifo{"fifo", csp::buffer(3)}, latest{"latest", csp::overwriting_buffer(2)};
    csp::Channel<int> doomed{"doomed", csp::buffer(4)}, left{"left"}, right{"right"};
    csp::Channel<int> to_child{"to-child"}, from_child{"from-child"}, from_grandchild{"from-grandchild"};
    csp::Barrier phase{"phase"};

    auto counted = [](csp::ChannelIn<int> in, int pause_first) {
        int n = 0;
        try {
            for (;;) {
                in();
                if (n++ < pause_first) csp::sleep(2ms);
            }
        } catch (const csp::ChannelRetireException&) {
        }
        return n;
    };
    auto write_n = [](csp::ChannelOut<int> out, int n) {
        for (int i = 0; i < n; ++i) out(i);
    };

    int numbers_read = 0, fifo_read = 0, latest_read = 0, chosen = 0, child_sum = -1, grand_read = 0;
    bool doomed_poisoned = false;
    try {
        auto [a, b, c, d, e, f, g, h, i, j, k, l] = csp::Parallel(
            csp::process("numbers-writer", write_n)(numbers.writer(), 50),
            csp::process("numbers-reader", counted)(numbers.reader(), 0),
            csp::process("fifo-writer", write_n)(fifo.writer(), 20),
            csp::process("fifo-reader", counted)(fifo.reader(), 5),
            csp::process("latest-pair", [](csp::ChannelOut<int> out, csp::ChannelIn<int> in) {
                for (int i = 0; i < 10; ++i) out(i);
                out.retire();
                int got = 0;
                try {
                    for (;;) {
                        in();
                        ++got;
                    }
                } catch (const csp::ChannelRetireException&) {
                }
                return got;
            })(latest.writer(), latest.reader()),
            csp::process("doomed-writer", [](csp::ChannelOut<int> out) {
                for (int i = 0; i < 3; ++i) out(i);
                out.poison();
            })(doomed.writer()),
            csp::process("doomed-reader", [](csp::ChannelIn<int> in) {
                csp::sleep(20ms);  // (after the poison)
                try {
                    in();
                } catch (const csp::ChannelPoisonException&) {
                    return true;
                }
                return false;
            })(doomed.reader()),
            csp::process("left-writer", write_n)(left.writer(), 5),
            csp::process("right-writer", write_n)(right.writer(), 5),
            csp::process("chooser", [](csp::ChannelIn<int> l, csp::ChannelIn<int> r) {
                int got = 0, ticks = 0;
                while (got < 10 && ticks < 1000) {
                    csp::Alternation alt{csp::InputGuard(l, [&](int) { ++got; }),
                                         csp::InputGuard(r, [&](int) { ++got; }),
                                         csp::TimeoutGuard(50ms, [&] { ++ticks; })};
                    alt.execute();
                }
                return got;
            })(left.reader(), right.reader()),
            csp::process("phase-a", [](csp::BarrierEnd e) {
                for (int i = 0; i < 3; ++i) e.sync();
            })(phase.end()),
            csp::process("phase-b", [](csp::BarrierEnd e) {
                for (int i = 0; i < 3; ++i) {
                    csp::sleep(1ms);
                    e.sync();
                }
            })(phase.end()));
        (void)a, (void)c, (void)f, (void)h, (void)i, (void)k, (void)l;
        numbers_read = b;
        fifo_read = d;
        latest_read = e;
        doomed_poisoned = g;
        chosen = j;
        if (fork) {
            auto [m, n, o, p] = csp::Parallel(
                csp::process("to-child-writer", write_n)(to_child.writer(), 5),
                csp::multiprocess("child", [](csp::ChannelIn<int> in, csp::ChannelOut<int> back,
                                              csp::ChannelOut<int> grand) {
                    int sum = 0;
                    for (int i = 0; i < 5; ++i) sum += in();
                    csp::Parallel(csp::multiprocess("grandchild", [](csp::ChannelOut<int> out) {
                        out(1);
                        out(2);
                    })(std::move(grand)));
                    back(sum);
                })(to_child.reader(), from_child.writer(), from_grandchild.writer()),
                csp::process("from-child-reader", [](csp::ChannelIn<int> in) { return in(); })(from_child.reader()),
                csp::process("grandchild-reader", counted)(from_grandchild.reader(), 0));
            (void)m, (void)n;
            child_sum = o;
            grand_read = p;
        }
    } catch (const csp::ProcessError& x) {
        std::fprintf(stderr, "trace_child: %s\n", x.what());
        return 1;
    }
    // A process that fails: an exception instant on its track.
    bool caught = false;
    try {
        csp::Parallel(csp::process("boom", [] { throw std::runtime_error("boom in the trace test"); })());
    } catch (const csp::ProcessError&) {
        caught = true;
    }
    if (numbers_read != 50) return fail("'numbers' did not carry 50 values");
    if (fifo_read != 20) return fail("'fifo' did not carry 20 values");
    if (latest_read != 2) return fail("'latest' did not keep the last 2 values");
    if (!doomed_poisoned) return fail("'doomed' was not poisoned");
    if (chosen != 10) return fail("the choice did not take 10 values");
    if (fork && child_sum != 0 + 1 + 2 + 3 + 4) return fail("the child's sum was wrong");
    if (fork && grand_read != 2) return fail("the grandchild's 2 values did not arrive");
    if (!caught) return fail("the failing process did not fail");
    return 0;
}
