// mpi: ping-pong between two MPI ranks over csp channels.
//
//   rank 0: Driver --ping--> Echo :rank 1
//                  <--pong--
//
// (a) latency: an 8-byte std::uint64_t there and back; ns_per_op is the
//     one-way latency = the timed loop / (2 x round trips).
// (b) bandwidth: a 1 MiB std::vector<char> there and back (the same vector
//     goes round, stamped anew); mb_per_s counts each direction's message
//     (2 x 1 MiB per round trip), 1 MB = 10^6 B.
// Each part warms up with a tenth of its count. Run under `mpirun -np 2`;
// rank 0 prints one line:
//   RESULT name=mpi impl=csp workers=W ns_per_op=<one-way ns> latency_us=<x> mb_per_s=<y> ...
// Peers: bench/peers/mpi_raw.c (MPI_Ssend/MPI_Recv: the floor),
// bench/peers/mpi_python.py (mpi4py).
//
// Usage: mpi [round trips] [--bandwidth-divisor D]   (bandwidth round trips = round trips / D)
#include <csp/csp.hpp>
#include <csp/mpi.hpp>

#include "common.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Value = std::uint64_t;
using Message = std::vector<char>;
constexpr std::size_t kMessageBytes = 1 << 20;

struct Counts {
    long lat = 0, bw = 0;
};

struct Times {
    double lat_seconds = 0, bw_seconds = 0;
    bool ok = false;
};

auto Echo = csp::process("echo", [](csp::ChannelIn<Value> ping, csp::ChannelOut<Value> pong,
                                    csp::ChannelIn<Message> ping_big, csp::ChannelOut<Message> pong_big, Counts n) {
    for (long i = 0; i < n.lat + n.lat / 10 + 1; ++i) pong(ping());
    for (long i = 0; i < n.bw + n.bw / 10 + 1; ++i) pong_big.write(ping_big());
});

auto Driver = csp::process("driver", [](csp::ChannelOut<Value> ping, csp::ChannelIn<Value> pong,
                                        csp::ChannelOut<Message> ping_big, csp::ChannelIn<Message> pong_big,
                                        Counts n) {
    Times t;
    bool ok = true;
    Value i = 0;
    for (long k = 0; k < n.lat / 10 + 1; ++k, ++i) {
        ping(i);
        ok &= pong() == i;
    }
    auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n.lat; ++k, ++i) {
        ping(i);
        ok &= pong() == i;
    }
    auto t1 = std::chrono::steady_clock::now();
    t.lat_seconds = std::chrono::duration<double>(t1 - t0).count();
    Message m(kMessageBytes, 'x');
    const auto round_trip = [&](Value stamp) {
        std::memcpy(m.data(), &stamp, sizeof stamp);
        ping_big.write(std::move(m));
        m = pong_big();
        Value back;
        std::memcpy(&back, m.data(), sizeof back);
        ok &= back == stamp && m.size() == kMessageBytes;
    };
    for (long k = 0; k < n.bw / 10 + 1; ++k, ++i) round_trip(i);
    t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < n.bw; ++k, ++i) round_trip(i);
    t1 = std::chrono::steady_clock::now();
    t.bw_seconds = std::chrono::duration<double>(t1 - t0).count();
    t.ok = ok;
    return t;
});

}  // namespace

int main(int argc, char** argv) {
    csp::mpi::World world{argc, argv};
    Counts n;
    n.lat = bench::parse_count(argc, argv, 20000, "round trips");
    long divisor = 40;
    if (argc >= 4 && std::string(argv[2]) == "--bandwidth-divisor") bench::parse_long(argv[3], 1, divisor);
    n.bw = std::max(1L, n.lat / divisor);
    if (world.size() != 2) {
        if (world.rank() == 0) std::fprintf(stderr, "mpi: run it on 2 ranks (mpirun -np 2)\n");
        return 2;
    }
    csp::Channel<Value> ping{"ping"}, pong{"pong"};
    csp::Channel<Message> ping_big{"ping_big"}, pong_big{"pong_big"};
    auto [t, nothing] = csp::Parallel(
        csp::on_rank(0, Driver(ping.writer(), pong.reader(), ping_big.writer(), pong_big.reader(), n)),
        csp::on_rank(1, Echo(ping.reader(), pong.writer(), ping_big.reader(), pong_big.writer(), n)));
    (void)nothing;
    if (world.rank() != 0) return 0;
    if (!t.ok) {
        std::fprintf(stderr, "mpi: a message came back different\n");
        return 1;
    }
    const double one_way_ns = t.lat_seconds * 1e9 / (2.0 * static_cast<double>(n.lat));
    const double mb_per_s = 2.0 * static_cast<double>(kMessageBytes) * static_cast<double>(n.bw) / t.bw_seconds / 1e6;
    std::printf("RESULT name=mpi impl=csp workers=%u ns_per_op=%.2f latency_us=%.3f mb_per_s=%.1f round_trips=%ld "
                "bw_round_trips=%ld\n",
                bench::worker_count(), one_way_ns, one_way_ns / 1e3, mb_per_s, n.lat, n.bw);
    return 0;
}
