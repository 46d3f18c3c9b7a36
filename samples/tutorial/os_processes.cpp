// Chapter 6: OS processes. The same network, some of it in forked processes.
#include <csp/csp.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

int main() {
    csp::Channel<int> jobs{"jobs"};
    csp::Channel<std::string> reports{"reports"};

    // csp::multiprocess is csp::process in a forked OS process of its own:
    // channels, choice, retire and poison behave exactly as between fibers.
    // Values cross by copy (trivially copyable) or by serialization (cereal:
    // strings, containers, tuples, your types with serialize()).
    auto worker = csp::multiprocess("worker", [](csp::ChannelIn<int> in, csp::ChannelOut<std::string> out) {
        for (;;) {
            const int job = in();
            out("job " + std::to_string(job) + " squared is " + std::to_string(job * job));
        }
    });
    auto boss = csp::process("boss", [](csp::ChannelOut<int> out) {
        for (int i = 1; i <= 6; ++i) out(i);
    });
    auto printer = csp::process("printer", [](csp::ChannelIn<std::string> in) {
        int n = 0;
        try {
            for (;;) in(), ++n;
        } catch (const csp::ChannelRetireException&) {
        }
        return n;
    });
    // Three workers, each its own OS process, share one channel of jobs.
    auto [b, w, printed] =
        csp::Parallel(boss(jobs.writer()), 3 * worker(jobs.reader(), reports.writer()), printer(reports.reader()));
    std::printf("%d reports from 3 OS processes\n", printed);

    // An exception in a child comes back as a ProcessError holding a RemoteError.
    try {
        csp::Parallel(csp::multiprocess("failing", [] { throw std::runtime_error("no luck"); })());
    } catch (const csp::ProcessError& e) {
        std::printf("caught: %s\n", e.what());
    }
}
