// graph_child: a program for check_graph.py, run with CSP_GRAPH set.
//
//   graph_child deadlock   a ring of three stages that each read before they
//                          write: the DeadlockError's graph, cycle in red
//   graph_child across     the same ring with two of its stages in child OS
//                          processes (csp::multiprocess): the graph of the
//                          deadlock across them, drawn by whichever OS
//                          process broke it, every OS process a cluster
//   graph_child barrier    one process syncs a barrier before it writes, the
//                          other reads before it syncs: the cycle through
//                          the barrier in red
//   graph_child barrier-across  the same, the reader in a child OS process
//   graph_child exit       a pipeline that ends normally, then two spawned
//                          processes still running (one sleeping, one
//                          blocked reading from it) when main returns: the
//                          graph at exit
//   graph_child live PATH  csp::write_graph(PATH) from a process while a
//                          producer sleeps, a buffered channel holds 2, and
//                          a process it has just readied waits to run (on
//                          one worker: CSP_THREADS=1)
//   graph_child live-across PATH  csp::write_graph(PATH) from a process of
//                          a network of three OS processes: a child that
//                          sleeps and then writes to a channel, a child
//                          blocked reading from it, and a child busy
//                          computing for 2 s without a pause (run with
//                          CSP_THREADS=1, it cannot answer)
//   graph_child signal FLAG  a writer that sleeps until file FLAG exists (at
//                          most 10 s) before it writes, its reader blocked
//                          meanwhile; prints "ready" once under way, for
//                          check_graph.py to send SIGUSR1 (it makes FLAG when
//                          it has seen the graph)
//
// Prints nothing on success; exits 1 if the run did not go as planned.
#include <csp/csp.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "deadlock") {
        csp::Channel<int> a{"ring-a"}, b{"ring-b"}, c{"ring-c"};
        auto stage = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) { out(in()); };
        auto p = csp::process("stage-p", stage), q = csp::process("stage-q", stage), r = csp::process("stage-r", stage);
        try {
            csp::Parallel(p(a.reader(), b.writer()), q(b.reader(), c.writer()), r(c.reader(), a.writer()));
        } catch (const csp::DeadlockError&) {
            return 0;
        }
        return 1;
    }
    if (mode == "barrier" || mode == "barrier-across") {
        csp::Barrier gate{"gate"};
        csp::Channel<int> wire{"after-gate"};
        // (The reader catches its DeadlockError: a child's would come back as
        // a RemoteError inside a ProcessError.)
        auto early = csp::process("syncs-first", [](csp::BarrierEnd b, csp::ChannelOut<int> out) {
            try {
                b.sync();
                out(1);
                return 1;
            } catch (const csp::DeadlockError&) {
                return 0;
            }
        });
        auto late = [](csp::BarrierEnd b, csp::ChannelIn<int> in) {
            try {
                in();
                b.sync();
                return 1;
            } catch (const csp::DeadlockError&) {
                return 0;
            }
        };
        auto [x, y] = mode == "barrier"
                          ? csp::Parallel(early(gate.end(), wire.writer()), csp::process("reads-first", late)(gate.end(), wire.reader()))
                          : csp::Parallel(early(gate.end(), wire.writer()),
                                          csp::multiprocess("reads-first", late)(gate.end(), wire.reader()));
        return x == 0 && y == 0 ? 0 : 1;
    }
    if (mode == "across") {
        csp::Channel<int> a{"ring-a"}, b{"ring-b"}, c{"ring-c"};
        // (Each catches its DeadlockError: a child's would come back as a
        // RemoteError inside a ProcessError.)
        auto stage = [](csp::ChannelIn<int> in, csp::ChannelOut<int> out) {
            try {
                out(in());
                return 1;
            } catch (const csp::DeadlockError&) {
                return 0;
            }
        };
        auto [p, q, r] = csp::Parallel(csp::multiprocess("stage-p", stage)(a.reader(), b.writer()),
                                       csp::multiprocess("stage-q", stage)(b.reader(), c.writer()),
                                       csp::process("stage-r", stage)(c.reader(), a.writer()));
        return p == 0 && q == 0 && r == 0 ? 0 : 1;
    }
    if (mode == "exit") {
        csp::Channel<int> done{"finished-wire"};
        csp::Parallel(csp::process("finisher-out", [](csp::ChannelOut<int> o) { o(1); })(done.writer()),
                      csp::process("finisher-in", [](csp::ChannelIn<int> i) { i(); })(done.reader()));
        // Still running at exit, which writes the graph before it waits for
        // them: one sleeping, one blocked reading from it. (main waits until
        // the sleeper has begun, then a moment for both to be in their
        // waits: under a loaded CI machine a spawned process may not have
        // run yet when main returns.)
        csp::Channel<int> late{"late-wire"}, begun{"begun"};
        csp::Spawn(csp::process("left-sleeping", [](csp::ChannelOut<int> started, csp::ChannelOut<int> o) {
                       started(1);
                       csp::sleep(1500ms);
                       o(1);
                   })(begun.writer(), late.writer()),
                   csp::process("left-waiting", [](csp::ChannelIn<int> i) { i(); })(late.reader()));
        begun.reader()();
        std::this_thread::sleep_for(300ms);
        return 0;
    }
    if (mode == "live" && argc > 2) {
        const std::string path = argv[2];
        csp::Channel<int> slow{"slow-wire"}, held{"held-wire", csp::buffer(4)}, poke{"poke-wire"};
        auto out = held.writer();
        out(1);
        out(2);
        bool ok = false;
        csp::Parallel(
            csp::process("sleepy-producer", [](csp::ChannelOut<int> o) { csp::sleep(2000ms); o(7); })(slow.writer()),
            csp::process("patient-consumer", [](csp::ChannelIn<int> i) { i(); })(slow.reader()),
            csp::process("poked", [](csp::ChannelIn<int> i) { i(); })(poke.reader()),
            csp::process("watcher", [&](csp::ChannelOut<int> o) {
                csp::sleep(200ms);  // (the others in their waits by now, even on a loaded machine)
                o(1);  // (readies 'poked': on one worker it waits its turn while this draws)
                csp::write_graph(path);
                ok = true;
            })(poke.writer()));
        return ok ? 0 : 1;
    }
    if (mode == "live-across" && argc > 2) {
        const std::string path = argv[2];
        csp::Channel<int> slow{"slow-wire"}, busy_done{"busy-done"};
        bool ok = false;
        auto [written, read, spun, watched] = csp::Parallel(
            csp::multiprocess("remote-sleeper", [](csp::ChannelOut<int> o) { csp::sleep(2000ms); o(7); return 1; })(
                slow.writer()),
            csp::multiprocess("remote-reader", [](csp::ChannelIn<int> i) { return i(); })(slow.reader()),
            csp::multiprocess("remote-busy", [] {
                const auto until = std::chrono::steady_clock::now() + 2000ms;
                long spins = 0;
                while (std::chrono::steady_clock::now() < until) ++spins;  // no pause
                return spins > 0 ? 1 : 0;
            })(),
            csp::process("watcher", [&] {
                csp::sleep(400ms);  // (the children in their waits by now, even on a loaded machine)
                csp::write_graph(path);
                ok = true;
            })());
        (void)watched;
        return ok && written == 1 && read == 7 && spun == 1 ? 0 : 1;
    }
    if (mode == "signal" && argc > 2) {
        const std::string flag = argv[2];
        csp::Channel<int> wire{"signal-wire"};
        csp::Parallel(csp::process("slow-writer", [flag](csp::ChannelOut<int> o) {
                          std::printf("ready\n");
                          std::fflush(stdout);
                          for (int i = 0; i < 200 && access(flag.c_str(), F_OK) != 0; ++i) csp::sleep(50ms);
                          o(1);
                      })(wire.writer()),
                      csp::process("signal-reader", [](csp::ChannelIn<int> i) { i(); })(wire.reader()));
        return 0;
    }
    std::fprintf(stderr, "usage: graph_child deadlock|across|exit|live PATH|live-across PATH|signal FLAG\n");
    return 2;
}
