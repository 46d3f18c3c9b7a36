/* mpi_funneled: bench/mpi's ping-pong written in raw MPI the way issue 14's
 * design constraints make csp use MPI, with no csp in it: MPI initialised
 * with MPI_THREAD_MULTIPLE (so that user code may call MPI on other threads),
 * a duplicated communicator, each message sent with MPI_Isend and completed
 * with MPI_Test, and received by polling MPI_Improbe on MPI_ANY_SOURCE, then
 * MPI_Mrecv of the probed size. Each hop is one eager message (csp's
 * unbuffered write and the reader's answer go as one bundle: see
 * mpi/comm.cpp), so this is what any csp built on those constraints cannot
 * go below, where mpi_raw (MPI_Ssend/MPI_Recv, single-threaded MPI) is what
 * MPI itself can do.
 * (a) 8 bytes there and back: one-way latency (the message carries 56 bytes,
 *     as csp's value with its header does); (b) 1 MiB there and back: MB/s
 *     counting both directions, received into one buffer kept for the run.
 * Usage: mpi_funneled [round trips] [--bandwidth-divisor D]
 * Rank 0 prints: RESULT name=mpi impl=mpi-funneled workers=1 ns_per_op=... latency_us=... mb_per_s=... */
#include <mpi.h>

#include "mpi_peer_args.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_BYTES (1 << 20)
#define SMALL_BYTES 56
#define TAG 7011

/* receive_one: poll until a message comes, then receive it into buf. */
static void receive_one(MPI_Comm comm, void* buf, int capacity, MPI_Request* sending) {
    for (;;) {
        int flag = 0;
        MPI_Message handle;
        MPI_Status status;
        if (*sending != MPI_REQUEST_NULL) {
            int done = 0;
            MPI_Test(sending, &done, MPI_STATUS_IGNORE);
        }
        MPI_Improbe(MPI_ANY_SOURCE, TAG, comm, &flag, &handle, &status);
        if (!flag) continue;
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        if (count > capacity) {
            fprintf(stderr, "mpi_funneled: a message of %d bytes\n", count);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        MPI_Mrecv(buf, count, MPI_BYTE, &handle, &status);
        return;
    }
}

/* pingpong: rank 0 sends first; each rank answers what it receives. Returns
 * the seconds of the n timed round trips. */
static double pingpong(MPI_Comm comm, int rank, char* out, char* in, int bytes, long warmup, long n) {
    const int peer = 1 - rank;
    MPI_Request sending = MPI_REQUEST_NULL;
    double t0 = 0;
    for (long k = 0; k < warmup + n; ++k) {
        if (k == warmup) t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Isend(out, bytes, MPI_BYTE, peer, TAG, comm, &sending);
            receive_one(comm, in, bytes, &sending);
        } else {
            receive_one(comm, in, bytes, &sending);
            if (sending != MPI_REQUEST_NULL) MPI_Wait(&sending, MPI_STATUS_IGNORE);
            MPI_Isend(out, bytes, MPI_BYTE, peer, TAG, comm, &sending);
        }
        if (rank == 0 && sending != MPI_REQUEST_NULL) MPI_Wait(&sending, MPI_STATUS_IGNORE);
    }
    const double seconds = MPI_Wtime() - t0;
    if (sending != MPI_REQUEST_NULL) MPI_Wait(&sending, MPI_STATUS_IGNORE);
    return seconds;
}

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    long n = 0, bw = 0;
    if (!mpi_peer_args(argc, argv, "mpi_funneled", &n, &bw)) {
        MPI_Finalize();
        return 2;
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm comm;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    char small_out[SMALL_BYTES], small_in[SMALL_BYTES];
    memset(small_out, 0, sizeof small_out);
    char* big_out = malloc(MESSAGE_BYTES);
    char* big_in = malloc(MESSAGE_BYTES);
    memset(big_out, 'x', MESSAGE_BYTES);
    memset(big_in, 0, MESSAGE_BYTES);
    const double lat = pingpong(comm, rank, small_out, small_in, SMALL_BYTES, n / 10 + 1, n);
    const double bws = pingpong(comm, rank, big_out, big_in, MESSAGE_BYTES, bw / 10 + 1, bw);
    if (rank == 0) {
        const double one_way_ns = lat * 1e9 / (2.0 * (double)n);
        printf("RESULT name=mpi impl=mpi-funneled workers=1 ns_per_op=%.2f latency_us=%.3f mb_per_s=%.1f "
               "round_trips=%ld bw_round_trips=%ld provided=%d\n",
               one_way_ns, one_way_ns / 1e3, 2.0 * MESSAGE_BYTES * (double)bw / bws / 1e6, n, bw, provided);
    }
    free(big_out);
    free(big_in);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
