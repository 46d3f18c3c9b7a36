#!/usr/bin/python3
"""mpi_python: bench/mpi's ping-pong with mpi4py (python3-mpi4py), what a
Python user would pick: comm.ssend/recv of a Python int (pickled), then
comm.Ssend/Recv of a 1 MiB bytearray (buffer protocol, no pickling).
Usage: mpi_python.py [round trips] [--bandwidth-divisor D]; rank 0 prints the RESULT line."""
import sys
import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
divisor = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--bandwidth-divisor" else 40
bw = max(1, n // divisor)
if comm.Get_size() != 2:
    sys.exit("mpi_python: run it on 2 ranks")


def objects(count):
    for i in range(count):
        if rank == 0:
            comm.ssend(i, dest=1, tag=1)
            assert comm.recv(source=1, tag=2) == i
        else:
            comm.ssend(comm.recv(source=0, tag=1), dest=0, tag=2)


def buffers(count, buf):
    for _ in range(count):
        if rank == 0:
            comm.Ssend(buf, dest=1, tag=3)
            comm.Recv(buf, source=1, tag=4)
        else:
            comm.Recv(buf, source=0, tag=3)
            comm.Ssend(buf, dest=0, tag=4)


objects(n // 10 + 1)
t0 = time.perf_counter()
objects(n)
lat = time.perf_counter() - t0
buf = bytearray(1 << 20)
buffers(bw // 10 + 1, buf)
t0 = time.perf_counter()
buffers(bw, buf)
bws = time.perf_counter() - t0
if rank == 0:
    one_way = lat * 1e9 / (2 * n)
    print(f"RESULT name=mpi impl=mpi4py workers=1 ns_per_op={one_way:.2f} latency_us={one_way / 1e3:.3f} "
          f"mb_per_s={2 * (1 << 20) * bw / bws / 1e6:.1f} round_trips={n} bw_round_trips={bw}")
