// ipc: ping-pong between a fiber in this OS process and a csp::multiprocess
// (a forked child OS process), over unbuffered channels.
//
//   +--------+  ping   +------+
//   | Driver | ------> | Echo |      Driver: a fiber process in the parent
//   | (fiber)| <------ | (OS  |      Echo:   a csp::multiprocess (forked child)
//   +--------+  pong   | proc)|
//                      +------+
//
// Two pairs of unbuffered channels, one pair per payload type:
// (a) latency: ping/pong carry a std::uint64_t (8 bytes, trivially copyable:
//     copied by memcpy through shared memory). The driver writes i and reads
//     it back; one round trip per iteration. The figure is one-way latency =
//     the timed loop / (2 * round trips), reported as ns_per_op and latency_us.
// (b) bandwidth: ping/pong carry a std::vector<char> of 64 KiB (serialized
//     across the OS-process boundary). Same ping-pong; the driver sends the
//     vector it got back, stamped anew, so no copy is made by the benchmark
//     itself. Figure: bytes moved one way per second, counting each
//     direction's message (2 * 64 KiB per round trip), in MB/s (10^6 B).
// Each part runs a warm-up of a tenth of its count first. The driver checks
// that every message comes back as sent. Echo is told the counts, echoes
// exactly that many of each and ends; its ends leave with it.
//
// Peers: bench/peers/ipc_pipe.c (a pipe pair between fork()ed processes) and
// bench/peers/ipc_python.py (multiprocessing Pipe and Queue), same counts.
//
// Usage: ipc [iterations] | --iterations N
//            [--bandwidth-iterations M | --bandwidth-divisor D]
//   iterations: latency round trips (default 50000). Bandwidth round trips:
//   M, else iterations / D (D default 5). bench/run passes a divisor per
//   program so that each part runs for about a second.
//   Worker count: CSP_THREADS, read by the runtime (in both OS processes).
// Prints one line:
//   RESULT name=ipc impl=csp workers=W ns_per_op=<one-way ns> latency_us=<x> mb_per_s=<y> ...
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include "common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using Value = std::uint64_t;
using Message = std::vector<char>;

constexpr std::size_t kMessageBytes = 64 * 1024;
constexpr long kDefaultIterations = 50'000;
constexpr long kDefaultBandwidthDivisor = 5;

struct Counts {
    long lat_warmup = 0, lat = 0;  // latency round trips
    long bw_warmup = 0, bw = 0;    // bandwidth round trips
};

struct DriverResult {
    double lat_seconds = 0;  // timed loops only
    double bw_seconds = 0;
    bool values_ok = false;  // every message came back as sent
};

// The child OS process: echo the values, then the messages. Captures nothing;
// everything it needs comes in as arguments (copied into the child).
auto Echo = csp::multiprocess([](csp::ChannelIn<Value> ping, csp::ChannelOut<Value> pong,
                                 csp::ChannelIn<Message> ping_big,
                                 csp::ChannelOut<Message> pong_big, Counts n) {
    for (long i = 0; i < n.lat_warmup + n.lat; ++i) pong(ping());
    for (long i = 0; i < n.bw_warmup + n.bw; ++i) pong_big.write(ping_big());
});

// The first and last 8 bytes of a message carry its number.
void stamp(Message& m, Value i) {
    std::memcpy(m.data(), &i, sizeof i);
    std::memcpy(m.data() + m.size() - sizeof i, &i, sizeof i);
}

bool stamped(const Message& m, Value i) {
    if (m.size() != kMessageBytes) return false;
    Value a, b;
    std::memcpy(&a, m.data(), sizeof a);
    std::memcpy(&b, m.data() + m.size() - sizeof b, sizeof b);
    return a == i && b == i;
}

auto Driver = csp::process([](csp::ChannelOut<Value> ping, csp::ChannelIn<Value> pong,
                              csp::ChannelOut<Message> ping_big,
                              csp::ChannelIn<Message> pong_big, Counts n) {
    DriverResult r;
    bool ok = true;

    // (a) latency
    Value i = 0;
    for (long k = 0; k < n.lat_warmup; ++k, ++i) {
        ping(i);
        ok &= (pong() == i);
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n.lat; ++k, ++i) {
        ping(i);
        ok &= (pong() == i);
    }
    auto t1 = std::chrono::steady_clock::now();
    r.lat_seconds = std::chrono::duration<double>(t1 - t0).count();

    // (b) bandwidth: one vector goes round and round; what comes back is the
    // next one to send.
    Message m(kMessageBytes, 'x');
    i = 0;
    for (long k = 0; k < n.bw_warmup; ++k, ++i) {
        stamp(m, i);
        ping_big.write(std::move(m));
        m = pong_big();
        ok &= stamped(m, i);
    }
    t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n.bw; ++k, ++i) {
        stamp(m, i);
        ping_big.write(std::move(m));
        m = pong_big();
        ok &= stamped(m, i);
    }
    t1 = std::chrono::steady_clock::now();
    r.bw_seconds = std::chrono::duration<double>(t1 - t0).count();
    r.values_ok = ok;
    return r;
});

[[noreturn]] void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s [iterations>0] | --iterations N "
                 "[--bandwidth-iterations M | --bandwidth-divisor D]\n",
                 argv0);
    std::exit(2);
}

// One count (> 0) of the command line, or the usage.
long parse_count(const char* s, const char* argv0) {
    long n = 0;
    if (!bench::parse_long(s, 1, n)) usage(argv0);
    return n;
}

Counts parse_args(int argc, char** argv) {
    long iterations = kDefaultIterations, bw = 0, divisor = kDefaultBandwidthDivisor;
    for (int k = 1; k < argc; ++k) {
        std::string_view a = argv[k];
        // --name N or --name=N; returns the value if argv[k] is that option.
        auto option = [&](std::string_view name) -> const char* {
            if (a == name) {
                if (k + 1 >= argc) usage(argv[0]);
                return argv[++k];
            }
            if (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=')
                return argv[k] + name.size() + 1;
            return nullptr;
        };
        if (const char* v = option("--iterations")) {
            iterations = parse_count(v, argv[0]);
        } else if (const char* v = option("--bandwidth-iterations")) {
            bw = parse_count(v, argv[0]);
        } else if (const char* v = option("--bandwidth-divisor")) {
            divisor = parse_count(v, argv[0]);
        } else if (!a.empty() && a[0] != '-') {
            iterations = parse_count(argv[k], argv[0]);
        } else {
            usage(argv[0]);
        }
    }
    Counts n;
    n.lat = iterations;
    n.bw = bw ? bw : std::max(1L, iterations / divisor);
    n.lat_warmup = n.lat / 10 + 1;
    n.bw_warmup = n.bw / 10 + 1;
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    const Counts n = parse_args(argc, argv);

    try {
        csp::Channel<Value> ping{"ping"}, pong{"pong"};
        csp::Channel<Message> ping_big{"ping_big"}, pong_big{"pong_big"};
        auto results = csp::Parallel(
            Echo(ping.reader(), pong.writer(), ping_big.reader(), pong_big.writer(), n),
            Driver(ping.writer(), pong.reader(), ping_big.writer(), pong_big.reader(), n));
        const DriverResult& r = std::get<1>(results);
        if (!r.values_ok) {
            std::fprintf(stderr, "ipc: a message came back different\n");
            return 1;
        }
        const double one_way_ns = r.lat_seconds * 1e9 / (2.0 * static_cast<double>(n.lat));
        const double mb_per_s = 2.0 * static_cast<double>(kMessageBytes) *
                                static_cast<double>(n.bw) / r.bw_seconds / 1e6;
        std::printf("RESULT name=ipc impl=csp workers=%u ns_per_op=%.2f latency_us=%.3f "
                    "mb_per_s=%.1f round_trips=%ld bw_round_trips=%ld latency_seconds=%.4f "
                    "bw_seconds=%.4f\n",
                    bench::worker_count(), one_way_ns, one_way_ns / 1e3, mb_per_s, n.lat, n.bw,
                    r.lat_seconds, r.bw_seconds);
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ipc: %s\n", e.what());
        return 1;
    }
    return 0;
}
