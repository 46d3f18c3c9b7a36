// sim.cpp: check_random and replay (csp/sim.hpp) on the runtime's
// simulation (runtime/sim.cpp).
//
// A schedule string is "s<seed>:" then the decisions, each a digit of base
// 36 (0-9, a-z), or "(n)" in decimal for larger ones, a run of k >= 4 equal
// decisions written once with "*k," after it.
#include "csp/sim.hpp"

#include "csp/process.hpp"
#include "runtime/runtime.hpp"
#include "runtime/trace.hpp"

#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <unistd.h>
#include <random>
#include <vector>

namespace csp::sim {
namespace {

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
constexpr std::uint64_t kMaxDecisions = std::uint64_t{1} << 28;  // (a schedule past this is not one)

std::string encode(std::uint64_t seed, const std::vector<std::uint32_t>& decisions) {
    std::string s = fmt::format("s{}:", seed);
    for (std::size_t i = 0; i < decisions.size();) {
        const std::uint32_t d = decisions[i];
        std::size_t run = 1;
        while (i + run < decisions.size() && decisions[i + run] == d) ++run;
        if (d < 36) s += kDigits[d];
        else s += fmt::format("({})", d);
        if (run >= 4) {
            s += fmt::format("*{},", run);
            i += run;
        } else {
            i += 1;
        }
    }
    return s;
}

[[noreturn]] void bad_schedule(std::string_view schedule, const char* why) {
    throw UsageError(fmt::format("csp::sim::replay: '{}' is not a schedule string ({})",
                                 schedule.size() > 60 ? std::string(schedule.substr(0, 60)) + "..." : std::string(schedule),
                                 why));
}

std::uint64_t parse_number(std::string_view schedule, std::size_t& i, char end) {
    std::uint64_t v = 0;
    const auto [p, ec] = std::from_chars(schedule.data() + i, schedule.data() + schedule.size(), v);
    if (ec != std::errc{} || p == schedule.data() + schedule.size() || *p != end) bad_schedule(schedule, "a bad number");
    i = static_cast<std::size_t>(p - schedule.data()) + 1;
    return v;
}

void decode(std::string_view schedule, std::uint64_t& seed, std::vector<std::uint32_t>& decisions) {
    if (schedule.empty() || schedule[0] != 's') bad_schedule(schedule, "it starts with 's' and the seed");
    std::size_t i = 1;
    seed = parse_number(schedule, i, ':');
    while (i < schedule.size()) {
        const char c = schedule[i];
        std::uint64_t d;
        if (c >= '0' && c <= '9') {
            d = static_cast<std::uint64_t>(c - '0');
            ++i;
        } else if (c >= 'a' && c <= 'z') {
            d = static_cast<std::uint64_t>(c - 'a' + 10);
            ++i;
        } else if (c == '(') {
            ++i;
            d = parse_number(schedule, i, ')');
        } else {
            bad_schedule(schedule, "an unknown character");
        }
        if (d > UINT32_MAX) bad_schedule(schedule, "a decision out of range");
        std::uint64_t run = 1;
        if (i < schedule.size() && schedule[i] == '*') {
            ++i;
            run = parse_number(schedule, i, ',');
            if (run == 0 || run > (std::uint64_t{1} << 32)) bad_schedule(schedule, "a bad run length");
        }
        if (run > kMaxDecisions - decisions.size()) bad_schedule(schedule, "too many decisions");
        decisions.insert(decisions.end(), run, static_cast<std::uint32_t>(d));
    }
}

struct Run {
    std::exception_ptr error;
    std::string what;
    std::string schedule;
    bool misfit = false;
};

Run run_once(const std::function<void()>& body, std::uint64_t seed, const std::vector<std::uint32_t>* script) {
    try {
        runtime::sim_begin(seed, script);
    } catch (const std::logic_error& e) {
        throw UsageError(std::string("csp::sim: ") + e.what());
    }
    Run run;
    std::exception_ptr escaped;  // (poison or retire from the body: Parallel would not say)
    try {
        auto simulated = process("simulated", [&body, &escaped] {
            try {
                body();
            } catch (const ChannelPoisonException&) {
                escaped = std::current_exception();
            } catch (const ChannelRetireException&) {
                escaped = std::current_exception();
            }
        });
        Parallel(simulated());
        if (escaped) std::rethrow_exception(escaped);
    } catch (const std::exception& e) {
        run.error = std::current_exception();
        run.what = e.what();
    } catch (...) {
        run.error = std::current_exception();
        run.what = "an exception that is not a std::exception";
    }
    runtime::SimRecord record = runtime::sim_end();
    run.schedule = encode(seed, record.decisions);
    run.misfit = record.misfit;
    return run;
}

std::uint64_t first_seed(const Options& options) {
    if (options.seed) return *options.seed;
    if (const char* env = std::getenv("CSP_SIM_SEED")) {
        std::uint64_t v = 0;
        const std::string_view s(env);
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size()) {
            throw UsageError(fmt::format("csp::sim: CSP_SIM_SEED='{}' is not a seed (a number)", env));
        }
        return v;
    }
    std::random_device device;
    return (std::uint64_t{device()} << 32) | device();
}

// Unasked: without CSP_TRACE the runs are traced all the same (the events
// of each run that passes dropped), so that a failing run's trace can be
// written at once, to a file of its own in the temporary directory.
class Traced {
public:
    Traced() : unasked_(runtime::trace_for_simulation()) {}
    ~Traced() {
        if (unasked_) runtime::trace_after_simulation();
    }
    Traced(const Traced&) = delete;
    Traced& operator=(const Traced&) = delete;
    // where: what to say of the failing run's trace (written now, if unasked).
    std::string where(std::uint64_t seed) const {
        if (!unasked_) {
            return fmt::format("its trace: {} (written at exit; the runs that passed are left out)",
                               runtime::trace_path());
        }
        std::error_code ec;
        std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
        if (ec) dir = "/tmp";
        static std::atomic<unsigned> failures{0};
        const std::string path =
            (dir / fmt::format("csp-sim-{}-{}-seed-{}.json", getpid(), ++failures, seed)).string();
        if (!runtime::trace_write_to(path)) return "its trace: could not be written (see the log above)";
        return fmt::format("its trace: {} (or CSP_TRACE=file.json to choose the file)", path);
    }

private:
    bool unasked_;
};

[[noreturn]] void fail(const Run& run, std::uint64_t seed, const std::string& where, const Traced& traced) {
    std::string what = fmt::format(
        "csp::sim: {} failed (seed {}): {}\n  the same run again: csp::sim::replay(body, \"{}\"), or "
        "CSP_SIM_SEED={} as the first seed\n  {}",
        where, seed, run.what, run.schedule, seed, traced.where(seed));
    std::fprintf(stderr, "%s\n", what.c_str());
    throw Failure(what, seed, run.schedule, run.error);
}

}  // namespace

void check_random(const std::function<void()>& body, Options options) {
    const std::uint64_t first = first_seed(options);
    const Traced traced;
    for (std::uint64_t i = 0; i < options.iterations; ++i) {
        const std::uint64_t seed = first + i;
        const std::size_t mark = runtime::trace_mark();
        const Run run = run_once(body, seed, nullptr);
        if (run.error) fail(run, seed, fmt::format("run {} of {}", i + 1, options.iterations), traced);
        runtime::trace_drop_since(mark);  // (the trace keeps the run that failed)
    }
}

void replay(const std::function<void()>& body, std::string_view schedule) {
    std::uint64_t seed = 0;
    std::vector<std::uint32_t> decisions;
    decode(schedule, seed, decisions);
    const Traced traced;
    const Run run = run_once(body, seed, &decisions);
    if (run.misfit) {
        throw UsageError(fmt::format("csp::sim::replay: the schedule does not fit this body: its run took other "
                                     "decisions (was the body changed?){}",
                                     run.error ? std::string("; the run failed: ") + run.what : std::string()));
    }
    if (run.error) fail(run, seed, "the replayed run", traced);
}

}  // namespace csp::sim
