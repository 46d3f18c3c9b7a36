// bench/common.hpp: the helpers every benchmark program repeated.
//
//   parse_long       one decimal count from a string, with a lower bound
//   parse_count      argv[1] as the program's count, or its usage and exit(2)
//   worker_count     the worker count the csp runtime uses (workers= in RESULT)
//   proc_status_kib  a VmRSS:/VmHWM: line of /proc/self/status (spawn's RSS)
//
// Header-only, standard library only (no csp, no Boost): the csp programs
// include it as "common.hpp", the Boost.Fiber peers through
// peers/fiber_common.hpp. Nothing here runs inside a timed loop: the helpers
// read the command line before a run and the environment or /proc after it.

#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sched.h>
#include <thread>

namespace bench {

// Parses `s` as a decimal long into `out`: true when all of `s` is the number
// and it is at least `min`. (As strtol: no overflow check, ERANGE gives LONG_MAX.)
inline bool parse_long(const char* s, long min, long& out) {
    char* end = nullptr;
    const long n = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || n < min) return false;
    out = n;
    return true;
}

// The program's count: argv[1], or `default_count` when there is none. A
// count that is not a number, or is below `min_count`, prints
//   usage: <argv0> [<what>>0]            (min_count 1, the usual case)
//   usage: <argv0> [<what>>=<min_count>] (any other minimum)
// and exits with status 2. Further arguments are not looked at.
inline long parse_count(int argc, char** argv, long default_count, const char* what,
                        long min_count = 1) {
    if (argc < 2) return default_count;
    long n = 0;
    if (!parse_long(argv[1], min_count, n)) {
        if (min_count == 1)
            std::fprintf(stderr, "usage: %s [%s>0]\n", argv[0], what);
        else
            std::fprintf(stderr, "usage: %s [%s>=%ld]\n", argv[0], what, min_count);
        std::exit(2);
    }
    return n;
}

// The worker count the runtime uses: CSP_THREADS, default all cores (API.md).
inline unsigned worker_count() {
    if (const char* s = std::getenv("CSP_THREADS"); s && *s) {
        long n = std::strtol(s, nullptr, 10);
        if (n > 0) return static_cast<unsigned>(n);
    }
    // (As the runtime counts cores: those of the CPU affinity, else all.)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? hc : 1;
}

// A "VmRSS:"/"VmHWM:" line of /proc/self/status, in KiB; -1 when unreadable.
inline long proc_status_kib(const char* key) {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    const std::size_t len = std::strlen(key);
    while (std::fgets(line, sizeof line, f)) {
        if (std::strncmp(line, key, len) == 0) {
            kib = std::strtol(line + len, nullptr, 10);
            break;
        }
    }
    std::fclose(f);
    return kib;
}

}  // namespace bench
