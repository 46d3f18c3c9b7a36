// ipc in C with a pipe pair: the peer of bench/ipc.cpp, same two measurements.
//
//   parent --ping pipe--> child
//   parent <--pong pipe-- child      (the child is fork()ed; both single-threaded)
//
// (a) latency: the parent writes an 8-byte std::uint64_t-sized value i, the
//     child reads it and writes it back; one round trip per iteration. The
//     figure is one-way latency = the timed loop / (2 * round trips).
// (b) bandwidth: the same ping-pong with 64 KiB messages both ways. A pipe
//     carries at most its capacity (64 KiB by default on Linux) per write and
//     a read may return less than asked, so both sides loop until the whole
//     message has moved. Figure: bytes moved one way per second, counting
//     each direction's message (2 * 64 KiB per round trip), in MB/s (10^6 B).
// Each part runs a warm-up of a tenth of its count first. The child checks
// nothing; the parent checks that every message comes back as sent (value i
// for (a), a message stamped with i at both ends for (b)).
//
// Usage: ipc_pipe [iterations] | --iterations N
//                 [--bandwidth-iterations M | --bandwidth-divisor D]
//   iterations: latency round trips (default 80000). Bandwidth round trips:
//   M, else iterations / D (D default 6), as in bench/ipc.cpp.
// Prints one line:
//   RESULT name=ipc impl=pipe workers=1 ns_per_op=<one-way ns> latency_us=<x> mb_per_s=<y> ...

#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kMessageBytes = 64 * 1024 };
static const long kDefaultIterations = 80000;
static const long kDefaultBandwidthDivisor = 6;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// Writes all n bytes (a pipe write of more than PIPE_BUF may be partial).
// Returns 0, or -1 on error / closed pipe.
static int write_all(int fd, const void* buf, size_t n) {
    const char* p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// Reads exactly n bytes. Returns 0, 1 on end of file before any byte, -1 on
// error or end of file in the middle of a message.
static int read_all(int fd, void* buf, size_t n) {
    char* p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) return got == 0 ? 1 : -1;
        got += (size_t)k;
    }
    return 0;
}

// The child: echo 8-byte values, then 64 KiB messages, until the parent
// closes the ping pipe. The parent says how many of each are coming first so
// the child knows where the 8-byte part ends.
static void child(int in, int out) {
    uint64_t counts[2];
    if (read_all(in, counts, sizeof counts) != 0) _exit(3);
    for (uint64_t i = 0; i < counts[0]; ++i) {
        uint64_t v;
        if (read_all(in, &v, sizeof v) != 0) _exit(3);
        if (write_all(out, &v, sizeof v) != 0) _exit(3);
    }
    char* buf = malloc(kMessageBytes);
    if (!buf) _exit(4);
    for (uint64_t i = 0; i < counts[1]; ++i) {
        if (read_all(in, buf, kMessageBytes) != 0) _exit(3);
        if (write_all(out, buf, kMessageBytes) != 0) _exit(3);
    }
    free(buf);
    _exit(0);
}

static void die(const char* what) {
    perror(what);
    exit(1);
}

static long parse_count(const char* s, const char* argv0) {
    char* end = NULL;
    long n = strtol(s, &end, 10);
    if (end == s || *end != '\0' || n <= 0) {
        fprintf(stderr, "usage: %s [iterations>0] | --iterations N "
                "[--bandwidth-iterations M | --bandwidth-divisor D]\n", argv0);
        exit(2);
    }
    return n;
}

static void stamp(char* msg, uint64_t i) {
    memcpy(msg, &i, sizeof i);
    memcpy(msg + kMessageBytes - sizeof i, &i, sizeof i);
}

static int stamped(const char* msg, uint64_t i) {
    uint64_t a, b;
    memcpy(&a, msg, sizeof a);
    memcpy(&b, msg + kMessageBytes - sizeof b, sizeof b);
    return a == i && b == i;
}

int main(int argc, char** argv) {
    long iterations = kDefaultIterations, bw_iterations = 0, divisor = kDefaultBandwidthDivisor;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = parse_count(argv[++i], argv[0]);
        } else if (strncmp(argv[i], "--iterations=", 13) == 0) {
            iterations = parse_count(argv[i] + 13, argv[0]);
        } else if (strcmp(argv[i], "--bandwidth-iterations") == 0 && i + 1 < argc) {
            bw_iterations = parse_count(argv[++i], argv[0]);
        } else if (strncmp(argv[i], "--bandwidth-iterations=", 23) == 0) {
            bw_iterations = parse_count(argv[i] + 23, argv[0]);
        } else if (strcmp(argv[i], "--bandwidth-divisor") == 0 && i + 1 < argc) {
            divisor = parse_count(argv[++i], argv[0]);
        } else if (strncmp(argv[i], "--bandwidth-divisor=", 20) == 0) {
            divisor = parse_count(argv[i] + 20, argv[0]);
        } else {
            iterations = parse_count(argv[i], argv[0]);
        }
    }
    if (bw_iterations == 0) bw_iterations = iterations / divisor > 0 ? iterations / divisor : 1;
    const long lat_warmup = iterations / 10 + 1, bw_warmup = bw_iterations / 10 + 1;

    int ping[2], pong[2];
    if (pipe(ping) != 0 || pipe(pong) != 0) die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(ping[1]);
        close(pong[0]);
        child(ping[0], pong[1]);
    }
    close(ping[0]);
    close(pong[1]);
    const int out = ping[1], in = pong[0];

    uint64_t counts[2] = {(uint64_t)(lat_warmup + iterations), (uint64_t)(bw_warmup + bw_iterations)};
    if (write_all(out, counts, sizeof counts) != 0) die("write");

    // (a) latency
    int ok = 1;
    uint64_t v = 0;
    for (long i = 0; i < lat_warmup; ++i) {
        uint64_t x = (uint64_t)i;
        if (write_all(out, &x, sizeof x) != 0 || read_all(in, &v, sizeof v) != 0) die("ping-pong");
        ok &= (v == x);
    }
    double t0 = now_seconds();
    for (long i = 0; i < iterations; ++i) {
        uint64_t x = (uint64_t)i;
        if (write_all(out, &x, sizeof x) != 0 || read_all(in, &v, sizeof v) != 0) die("ping-pong");
        ok &= (v == x);
    }
    double lat_seconds = now_seconds() - t0;

    // (b) bandwidth
    char* msg = malloc(kMessageBytes);
    char* back = malloc(kMessageBytes);
    if (!msg || !back) die("malloc");
    memset(msg, 'x', kMessageBytes);
    for (long i = 0; i < bw_warmup; ++i) {
        stamp(msg, (uint64_t)i);
        if (write_all(out, msg, kMessageBytes) != 0 || read_all(in, back, kMessageBytes) != 0)
            die("ping-pong");
        ok &= stamped(back, (uint64_t)i);
    }
    t0 = now_seconds();
    for (long i = 0; i < bw_iterations; ++i) {
        stamp(msg, (uint64_t)i);
        if (write_all(out, msg, kMessageBytes) != 0 || read_all(in, back, kMessageBytes) != 0)
            die("ping-pong");
        ok &= stamped(back, (uint64_t)i);
    }
    double bw_seconds = now_seconds() - t0;
    free(msg);
    free(back);

    close(out);
    close(in);
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "ipc_pipe: child failed (status %d)\n", status);
        return 1;
    }
    if (!ok) {
        fprintf(stderr, "ipc_pipe: a message came back different\n");
        return 1;
    }

    const double one_way_ns = lat_seconds * 1e9 / (2.0 * (double)iterations);
    const double mb_per_s = 2.0 * (double)kMessageBytes * (double)bw_iterations / bw_seconds / 1e6;
    printf("RESULT name=ipc impl=pipe workers=1 ns_per_op=%.2f latency_us=%.3f mb_per_s=%.1f "
           "round_trips=%ld bw_round_trips=%ld latency_seconds=%.4f bw_seconds=%.4f\n",
           one_way_ns, one_way_ns / 1e3, mb_per_s, iterations, bw_iterations, lat_seconds,
           bw_seconds);
    return 0;
}
