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
// body's frame. The first kMargin (256) bytes below the body's frame are
// not painted (the body's own frame may reach into them), so no figure
// below the body reads less than 256 B: "returns at once" is that floor.
// Each action runs twice, in two processes one after the other: the first
// time shows one-off costs (the first exception a program throws sets up
// the unwinder's caches on the thrower's stack; iostreams' first output).
//
// Linked with -z now (bench/meson.build): otherwise the first call of each
// function of a shared library resolves it lazily, on the stack of the
// caller, and the resolver saves the vector registers there (about 2.7 KiB
// on a CPU with AVX-512), once per function and program: not what a process
// needs in the long run.
//
// Usage: stack_depth   (one worker is enough: CSP_THREADS=1)
// Prints a table; no RESULT line (bench/run does not run it).
//
// This file uses only the public API (docs: shared/API.md).

#include <csp/csp.hpp>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kPainted = 48 * 1024;  // below the body's frame (the default stack is 128 KiB)
constexpr std::size_t kMargin = 256;                 // left unpainted just below the body's frame
constexpr unsigned char kPaint = 0xA5;

// paint fills kPainted bytes below the caller's frame; deepest_touched finds
// the lowest byte changed since. (noinline, and the stores through a
// volatile pointer: they must happen, below every frame of the action.)
[[gnu::noinline]] void paint(char* below) {
    volatile unsigned char* p = reinterpret_cast<volatile unsigned char*>(below);
    for (std::size_t i = 1; i <= kPainted; ++i) p[-static_cast<std::ptrdiff_t>(i)] = kPaint;
}

[[gnu::noinline]] const char* deepest_touched(const char* below) {
    const auto* p = reinterpret_cast<const volatile unsigned char*>(below) - kPainted;
    std::size_t i = 0;
    while (i < kPainted && p[i] == kPaint) ++i;
    return below - kPainted + i;
}

struct Depth {
    std::size_t from_top = 0;
    std::size_t below_body = 0;
};

// measure runs `action` inside a process (with a partner on a channel
// `other`, for actions that communicate) and returns how deep it went.
Depth measure(const std::function<void(csp::ChannelIn<long>&, csp::ChannelOut<long>&)>& action,
              const std::function<void(csp::ChannelIn<long>&, csp::ChannelOut<long>&)>& partner) {
    Depth d;
    auto measured = csp::process([&](csp::ChannelIn<long> in, csp::ChannelOut<long> out) {
        char marker = 0;
        char* body = &marker;
        // (The body's frame lies in the stack's first page: stacks end on a page boundary.)
        const char* top = reinterpret_cast<const char*>((reinterpret_cast<std::uintptr_t>(body) + kPage - 1) & ~(kPage - 1));
        // (Clear of this frame: a margin of kMargin bytes below it is not
        // painted, so "returns at once" reads kMargin below its body.)
        char* below = reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(body) - kMargin);
        paint(below);
        action(in, out);
        const char* deepest = deepest_touched(below);
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

}  // namespace

int main() {
    struct Row {
        const char* what;
        std::function<void(csp::ChannelIn<long>&, csp::ChannelOut<long>&)> action, partner;
    };
    const Row rows[] = {
        {"returns at once", nothing, nothing},
        {"a write that waits for its reader",
         [](auto&, auto& out) { out(1); },
         [](auto& in, auto&) {
             csp::sleep(std::chrono::milliseconds(1));
             in();
         }},
        {"a read that waits for its writer",
         [](auto& in, auto&) { in(); },
         [](auto&, auto& out) {
             csp::sleep(std::chrono::milliseconds(1));
             out(1);
         }},
        {"a choice of two inputs that waits",
         [](auto& in, auto&) {
             csp::Channel<long> idle{"idle"};
             auto idle_in = idle.reader();
             long got = 0;
             csp::Alternation alt{csp::InputGuard(in, [&](long v) { got = v; }),
                                  csp::InputGuard(idle_in, [&](long v) { got = v; })};
             alt.pri_execute();
         },
         [](auto&, auto& out) {
             csp::sleep(std::chrono::milliseconds(1));
             out(1);
         }},
        {"a read poisoned while it waits (caught)",
         [](auto& in, auto&) {
             try {
                 in();
             } catch (const csp::ChannelPoisonException&) {
             }
         },
         [](auto&, auto& out) {
             csp::sleep(std::chrono::milliseconds(1));
             out.poison();
         }},
        {"a read retired while it waits (caught)",
         [](auto& in, auto&) {
             try {
                 in();
             } catch (const csp::ChannelRetireException&) {
             }
         },
         [](auto&, auto& out) {
             csp::sleep(std::chrono::milliseconds(1));
             out.retire();
         }},
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
