// trace.cpp: the events of CSP_TRACE, kept in memory under one mutex and
// written at exit as Chrome trace event JSON. Nothing here runs unless
// CSP_TRACE is set (trace_detail::enabled).

#include "runtime/trace.hpp"

#include "runtime/log.hpp"
#include "runtime/runtime.hpp"
#include "runtime/scheduler.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unistd.h>
#include <vector>

namespace csp::runtime {
namespace trace_detail {
std::atomic<bool> enabled{false};
}

namespace {

struct Event {
    char phase;            // 'B' begin, 'E' end, 'i' instant, 'M' metadata
    std::uint64_t track;   // one per process
    std::int64_t micros;   // since the trace started
    std::string name;
    std::string object;
};

struct Trace {
    std::mutex mutex;
    std::vector<Event> events;
    std::string path;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

    Trace() {
        if (const char* env = std::getenv("CSP_TRACE"); env && *env) {
            path = env;
            trace_detail::enabled.store(true);
        }
    }
    ~Trace() { flush(); }

    std::int64_t now() const {
        // (Simulated: virtual time since the run began, the same every run.)
        if (simulating()) return sim_elapsed_ns() / 1000;
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::steady_clock::now() - start).count();
    }
    static std::uint64_t track_of(const Parker* p) {
        // (Simulated: the order in which the process was made; threads 0.)
        if (simulating()) return p && !p->is_thread ? task_of(p)->sim_id : 0;
        return reinterpret_cast<std::uintptr_t>(p);
    }
    void add(char phase, const Parker* track, const char* name, const char* object) {
        std::lock_guard<std::mutex> hold(mutex);
        events.push_back({phase, track_of(track), now(), name ? name : "", object ? object : ""});
    }
    void flush();
};

Trace& trace() {
    static Trace t;
    return t;
}

// Make sure the trace object exists (and reads CSP_TRACE) before main runs.
[[maybe_unused]] const bool init_at_load = (trace(), true);

void write_escaped(std::FILE* f, const std::string& s) {
    for (char c : s) {
        if (c == '"' || c == '\\') std::fputc('\\', f);
        if (static_cast<unsigned char>(c) < 0x20) continue;
        std::fputc(c, f);
    }
}

void Trace::flush() {
    std::lock_guard<std::mutex> hold(mutex);
    if (path.empty() || events.empty()) return;
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (!f) {
        logger().error("CSP_TRACE: cannot write '{}'", path);
        return;
    }
    const int pid = static_cast<int>(getpid());
    std::fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", f);
    bool first = true;
    for (const Event& e : events) {
        if (!first) std::fputs(",\n", f);
        first = false;
        if (e.phase == 'M') {
            std::fprintf(f, "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%llu,\"args\":{\"name\":\"",
                         pid, static_cast<unsigned long long>(e.track));
            write_escaped(f, e.name);
            std::fputs("\"}}", f);
            continue;
        }
        std::fprintf(f, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%llu,\"ts\":%lld,\"name\":\"", e.phase, pid,
                     static_cast<unsigned long long>(e.track), static_cast<long long>(e.micros));
        write_escaped(f, e.name);
        if (!e.object.empty()) {
            std::fputs(" ", f);
            write_escaped(f, e.object);
        }
        std::fputs("\"", f);
        if (e.phase == 'i') std::fputs(",\"s\":\"t\"", f);
        if (!e.object.empty()) {
            std::fputs(",\"args\":{\"channel\":\"", f);
            write_escaped(f, e.object);
            std::fputs("\"}", f);
        }
        std::fputs("}", f);
    }
    std::fputs("\n]}\n", f);
    std::fclose(f);
    events.clear();
}

}  // namespace

void trace_process_start(const Parker* p, const char* name) noexcept {
    if (!tracing()) return;
    trace().add('M', p, name, nullptr);
    trace().add('B', p, name, nullptr);
}

void trace_process_end(const Parker* p) noexcept {
    if (!tracing()) return;
    trace().add('E', p, "", nullptr);
}

void trace_event(const char* what, const char* object) noexcept {
    if (!tracing()) return;
    // Threads' tracks are named when they register, processes' when they start.
    trace().add('i', current(), what, object);
}

std::size_t trace_mark() noexcept {
    if (!tracing()) return 0;
    std::lock_guard<std::mutex> hold(trace().mutex);
    return trace().events.size();
}

void trace_drop_since(std::size_t mark) noexcept {
    if (!tracing()) return;
    std::lock_guard<std::mutex> hold(trace().mutex);
    if (trace().events.size() > mark) trace().events.resize(mark);
}

const char* trace_path() noexcept { return tracing() ? trace().path.c_str() : ""; }

}  // namespace csp::runtime
