/* mpi_peer_args.h: the command line and the 2-rank check the raw-MPI peers of
 * bench/mpi share (mpi_raw.c, mpi_funneled.c):
 *   NAME [round trips] [--bandwidth-divisor D]   (bandwidth round trips = round trips / D)
 * mpi_peer_args: sets *n and *bw; false (after saying so on rank 0) unless the
 * job has 2 ranks. */
#pragma once

#include <mpi.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool mpi_peer_args(int argc, char** argv, const char* name, long* n, long* bw) {
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    *n = argc > 1 ? atol(argv[1]) : 20000;
    const long divisor = argc > 3 && strcmp(argv[2], "--bandwidth-divisor") == 0 ? atol(argv[3]) : 40;
    *bw = *n / (divisor > 0 ? divisor : 1);
    if (*bw < 1) *bw = 1;
    if (size != 2) {
        if (rank == 0) fprintf(stderr, "%s: run it on 2 ranks\n", name);
        return false;
    }
    return true;
}
