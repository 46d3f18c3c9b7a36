// stack_depth: how much of its stack a fiber process uses, for the things
// processes commonly do.
//
// A process's stack is a fixed reservation that cannot grow or move (C++
// frames hold pointers into it), so its size must cover the deepest moment
// of the process's life, not its usual depth. What a stack costs in memory
// is the pages it touches: one 4 KiB page for a process whose deepest moment
// stays under 4 KiB from the top. This program measures those deepest
// moments, by stack painting: inside a process, the part of its stack below
// the current frame is filled with a pattern; the action runs; the deepest
// byte no longer holding the pattern is how far the action went. Each figure
// is counted from the top of the stack (the process's own first frames,
// csp's start-up frames above its body, included) and, apart, below the
// body's frame. The first kMargin (256) bytes below the painting function's
// frame are not painted, so "returns at once" reads the floor of the
// method, not a depth: the body's frame, that call and the margin.
// Each action runs twice, in two processes one after the other: the first
// time shows one-off costs (the first exception a program throws sets up
// the unwinder's caches on the thrower's stack; iostreams' first output).
//
// The first time a program calls a function of a shared library, the
// dynamic linker resolves it on the caller's stack (lazy binding, the
// default) and saves the vector registers there first: about 2.7 KiB on a
// CPU with AVX-512, once per function and program. That is most of what the
// "first time" column adds (libstdc++'s first exception calls several such
// functions); LD_BIND_NOW=1 resolves everything at start and shows it
// without.
//
// Usage: stack_depth   (one worker is enough: CSP_THREADS=1; CSP_STACK_SIZE,
// in KiB, bounds how much is painted)
// Prints a table; no RESULT line (bench/run does not run it).
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kMargin = 256;  // left unpainted below paint's own frame
constexpr unsigned char kPaint = 0xA5;

// painted: how much to paint: 48 KiB, less on a stack smaller than 64 KiB.
std::size_t painted() {
    std::size_t kib = 128;
    if (const char* env = std::getenv("CSP_STACK_SIZE")) kib = static_cast<std::size_t>(std::atol(env));
    return std::min<std::size_t>(48 * 1024, kib > 8 ? (kib - 4) * 1024 : 4 * 1024);
}

// paint fills `n` bytes from kMargin below its own frame down (everything
// under a called function's frame is dead once it returns) and returns
// where the paint begins; deepest_touched finds the lowest byte changed
// since, or null when the deepest painted byte changed (the action went
// further than was painted). (noinline, and the stores through a volatile
// pointer: they must happen, below every frame of the action.)
[[gnu::noinline]] char* paint(std::size_t n) {
    char* below = static_cast<char*>(__builtin_frame_address(0)) - kMargin;
    volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(below);
    for (std::size_t i = 1; i <= n; ++i) p[-static_cast<std::ptrdiff_t>(i)] = kPaint;
    return below;
}

[[gnu::noinline]] const char* deepest_touched(const char* below, std::size_t n) {
    const auto* p = reinterpret_cast<const volatile unsigned char*>(below) - n;
    if (p[0] != kPaint) return nullptr;
    std::size_t i = 0;
    while (i < n && p[i] == kPaint) ++i;
    return below - n + i;
}

struct Depth {
    std::size_t from_top = 0;
    std::size_t below_body = 0;
};

// measure runs `action` inside a process (with a partner on a channel
// `other`, for actions that communicate) and returns how deep it went.
// An action, or its partner's: given the measured process's two ends, or
// the partner's.
using Action = std::function<void(csp::ChannelIn<long>&, csp::ChannelOut<long>&)>;

Depth measure(const Action& action, const Action& partner) {
    Depth d;
    auto measured = csp::process([&](csp::ChannelIn<long> in, csp::ChannelOut<long> out) {
        char marker = 0;
        char* body = &marker;
        // (The body's frame lies in the stack's first page: stacks end on a page boundary.)
        const char* top = reinterpret_cast<const char*>((reinterpret_cast<std::uintptr_t>(body) + kPage - 1) & ~(kPage - 1));
        const std::size_t n = painted();
        const char* below = paint(n);
        action(in, out);
        const char* deepest = deepest_touched(below, n);
        if (!deepest) {
            std::fprintf(stderr, "stack_depth: an action went deeper than the %zu bytes painted\n", n);
            std::exit(1);
        }
        d.from_top = static_cast<std::size_t>(top - deepest);
        d.below_body = static_cast<std::size_t>(body - deepest);
        asm volatile("" : : "r"(body) : "memory");
    });
    auto other = csp::process([&](csp::ChannelIn<long> in, csp::ChannelOut<long> out) { partner(in, out); });
    csp::Channel<long> to_measured{"to-measured"}, from_measured{"from-measured"};
    csp::Parallel(measured(to_measured.reader(), from_measured.writer()),
                  other(from_measured.reader(), to_measured.writer()));
    return d;
}

void nothing(csp::ChannelIn<long>&, csp::ChannelOut<long>&) {}

// later: a partner that lets the measured process wait a moment, then acts.
Action later(Action act) {
    return [act](csp::ChannelIn<long>& in, csp::ChannelOut<long>& out) {
        csp::sleep(std::chrono::milliseconds(1));
        act(in, out);
    };
}

// read_caught: a read that ends with exception E, caught.
template <class E>
void read_caught(csp::ChannelIn<long>& in, csp::ChannelOut<long>&) {
    try {
        in();
    } catch (const E&) {
    }
}

}  // namespace

int main() {
    struct Row {
        const char* what;
        Action action, partner;
    };
    const Row rows[] = {
        {"returns at once", nothing, nothing},
        {"a write that waits for its reader", [](auto&, auto& out) { out(1); }, later([](auto& in, auto&) { in(); })},
        {"a read that waits for its writer", [](auto& in, auto&) { in(); }, later([](auto&, auto& out) { out(1); })},
        {"a choice of two inputs that waits",
         [](auto& in, auto&) {
             csp::Channel<long> idle{"idle"};
             auto idle_in = idle.reader();
             long got = 0;
             csp::Alternation alt{csp::InputGuard(in, [&](long v) { got = v; }),
                                  csp::InputGuard(idle_in, [&](long v) { got = v; })};
             alt.pri_execute();
         },
         later([](auto&, auto& out) { out(1); })},
        {"a read poisoned while it waits (caught)", read_caught<csp::ChannelPoisonException>,
         later([](auto&, auto& out) { out.poison(); })},
        {"a read retired while it waits (caught)", read_caught<csp::ChannelRetireException>,
         later([](auto&, auto& out) { out.retire(); })},
        {"throws and catches a std::runtime_error",
         [](auto&, auto&) {
             try {
                 throw std::runtime_error(std::to_string(42));
             } catch (const std::exception&) {
             }
         },
         nothing},
        {"std::printf of a double", [](auto&, auto&) { std::printf("  (printed %f)\n", 3.25); }, nothing},
        {"std::cout of a string and a double",
         [](auto&, auto&) { std::cout << "  (printed " << std::string("text") << ' ' << 2.5 << ")\n"; }, nothing},
    };
    std::printf("%-42s %22s %22s\n", "a process that", "from the stack's top", "below its body");
    std::printf("%-42s %11s %10s %11s %10s\n", "", "first time", "again", "first time", "again");
    for (const Row& row : rows) {
        const Depth first = measure(row.action, row.partner);
        const Depth again = measure(row.action, row.partner);
        std::printf("%-42s %9zu B %8zu B %9zu B %8zu B\n", row.what, first.from_top, again.from_top,
                    first.below_body, again.below_body);
    }
    return 0;
}
