/* mpi_raw: the floor for bench/mpi: ping-pong between two ranks with
 * MPI_Ssend / MPI_Recv (a synchronous send completes only when the receive
 * has started: the rendezvous an unbuffered channel promises).
 * (a) 8 bytes there and back: one-way latency; (b) 1 MiB there and back:
 * MB/s counting both directions. Usage: mpi_raw [round trips] [--bandwidth-divisor D]
 * Rank 0 prints: RESULT name=mpi impl=mpi workers=1 ns_per_op=... latency_us=... mb_per_s=... */
#include <mpi.h>

#include "mpi_peer_args.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_BYTES (1 << 20)

static double pingpong(int rank, void* buf, int bytes, long warmup, long n) {
    double t0 = 0;
    for (long k = 0; k < warmup + n; ++k) {
        if (k == warmup) t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Ssend(buf, bytes, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Ssend(buf, bytes, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        }
    }
    return MPI_Wtime() - t0;
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    long n = 0, bw = 0;
    if (!mpi_peer_args(argc, argv, "mpi_raw", &n, &bw)) {
        MPI_Finalize();
        return 2;
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    uint64_t value = 0;
    char* big = malloc(MESSAGE_BYTES);
    memset(big, 'x', MESSAGE_BYTES);
    const double lat = pingpong(rank, &value, sizeof value, n / 10 + 1, n);
    const double bws = pingpong(rank, big, MESSAGE_BYTES, bw / 10 + 1, bw);
    if (rank == 0) {
        const double one_way_ns = lat * 1e9 / (2.0 * (double)n);
        printf("RESULT name=mpi impl=mpi workers=1 ns_per_op=%.2f latency_us=%.3f mb_per_s=%.1f round_trips=%ld "
               "bw_round_trips=%ld\n",
               one_way_ns, one_way_ns / 1e3, 2.0 * MESSAGE_BYTES * (double)bw / bws / 1e6, n, bw);
    }
    free(big);
    MPI_Finalize();
    return 0;
}
