// trace.cpp: the events of CSP_TRACE, kept in memory under one mutex and
// written at exit as Chrome trace event JSON. Nothing here runs unless
// CSP_TRACE is set (trace_detail::observed, kTracing).
//
// The file is one JSON object whose traceEvents list holds every OS
// process's events: each child writes its own to <path>.<pid>.part when it
// ends (renamed into place once whole, so that a child killed meanwhile
// leaves nothing half written), and its parent takes them in when it has
// reaped the child (before the pid can be anybody else's) and writes them
// with its own, in its file or, for a grandchild, in its part. The
// children's clocks are the parent's (steady_clock, and the start copied by
// the fork), so their times line up.
#include "runtime/trace.hpp"

#include "runtime/arena.hpp"
#include "runtime/log.hpp"
#include "runtime/runtime.hpp"
#include "runtime/scheduler.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

namespace csp::runtime {
namespace trace_detail {
std::atomic<std::uint8_t> observed{0};
void observe(std::uint8_t what, bool on) noexcept {
    if (on) observed.fetch_or(what, std::memory_order_seq_cst);
    else observed.fetch_and(static_cast<std::uint8_t>(~what), std::memory_order_seq_cst);
    refresh_plain_home();
}
}

namespace {
// (Taken by whoever refreshes, so that the last to store stored what the
// last change made. A forked child makes it afresh: plain_home_after_fork.)
SpinLock g_plain_lock;
char g_no_home;  // (its address: the plain home while observed)
}  // namespace

std::atomic<Inbox*> g_plain_home{nullptr};

void refresh_plain_home() noexcept {
    Locked<SpinLock> hold(g_plain_lock);
    Inbox* home = trace_detail::observed.load(std::memory_order_seq_cst) != 0 ? reinterpret_cast<Inbox*>(&g_no_home)
                                                                                : g_local_inbox;
    g_plain_home.store(home, std::memory_order_seq_cst);
}

void plain_home_after_fork() noexcept {
    ::new (&g_plain_lock) SpinLock;  // (a thread of the parent may have held it)
    // (Until the child's refresh: no channel is plain here yet.)
    g_plain_home.store(reinterpret_cast<Inbox*>(&g_no_home), std::memory_order_seq_cst);
}

namespace {

// Event phases are Chrome's ('B' begin, 'E' end, 'i' instant, 's' / 'f' a
// flow's start and end, 'C' counter), and 'M' for a track's name.
struct Event {
    char phase;
    std::int32_t pid;      // the OS process whose track it is on
    std::uint64_t track;   // Parker::trace_track (0: a thread that is no process)
    std::int64_t nanos;    // since the trace started
    std::uint64_t number;  // a flow's id, a counter's value
    std::string name;
    std::string object;    // what it is about: a channel, a barrier, a message
    const char* key;       // the name of `object` in the event's args ("" when none)
};

constexpr std::uint64_t kSimulatedTracks = std::uint64_t{1} << 32;

struct Trace {
    std::mutex mutex;
    std::vector<Event> events;
    std::string path;     // CSP_TRACE
    std::string written;  // where this OS process writes: path, or a child's part
    std::string os_name;  // this OS process's group
    std::string parts;          // the events of the children reaped so far
    std::uint32_t tracks = 0;   // the last track number given (this OS process)
    // The channels' numbers, one counter for every OS process of the
    // network (in the arena, made before the first fork can happen: by the
    // first process to start, which precedes any channel and any fork).
    std::atomic<std::uint32_t>* channels = nullptr;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    // Added to flow ids and pids as they are written (an MPI rank's: see
    // trace_align; a forked child inherits them with `start`).
    std::uint64_t id_salt = 0;
    std::int32_t pid_salt = 0;

    Trace() {
        if (const char* env = std::getenv("CSP_TRACE"); env && *env) {
            path = env;
            written = path;
            os_name = program_invocation_short_name;
            trace_detail::observe(trace_detail::kTracing, true);
        }
    }
    ~Trace() { flush(); }

    std::int64_t now() const {
        // (Simulated: virtual time since the run began, the same every run.)
        if (simulating()) return sim_elapsed_ns();
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
            .count();
    }
    static std::uint64_t track_of(const Parker* p) {
        // (Simulated: the order in which the process was made, above every
        // number a process outside the simulation gets; threads 0.)
        if (simulating()) return p && !p->is_thread ? kSimulatedTracks | task_of(p)->sim_id : 0;
        return p ? p->trace_track : 0;
    }
    static std::int32_t pid_of(const Parker* p) {
        if (p && p->home && p->home->pid) return p->home->pid;
        return static_cast<std::int32_t>(getpid());
    }
    // add records one event; false when memory ran out (the trace goes
    // without it: a traced program must run on).
    bool add(char phase, const Parker* p, std::string_view name, std::string_view object = {},
             const char* key = "", std::uint64_t number = 0) noexcept {
        try {
            Event e{phase, pid_of(p), track_of(p), 0, number, std::string(name), std::string(object), key};
            std::lock_guard<std::mutex> hold(mutex);
            e.nanos = now();
            events.push_back(std::move(e));
            return true;
        } catch (const std::bad_alloc&) {
            return false;
        }
    }
    void flush();
    // write_all: the OS process's name, track 0, its events and its
    // children's (as part: without the file's head and tail).
    void write_all(std::FILE* f, bool part);
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

// write_time: a time in ns as Chrome's microseconds, "ts":1.234 (negative
// times too: a rank whose events began before rank 0's trace).
void write_time(std::FILE* f, std::int64_t ns) {
    const std::uint64_t magnitude = ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    std::fprintf(f, ",\"ts\":%s%llu.%03llu", ns < 0 ? "-" : "", static_cast<unsigned long long>(magnitude / 1000),
                 static_cast<unsigned long long>(magnitude % 1000));
}

void write_event(std::FILE* f, const Event& e, std::uint64_t id_salt, std::int32_t pid_salt) {
    const int pid = e.pid + pid_salt;
    std::fputs(",\n", f);  // (every event follows another: the OS process's name comes first)
    if (e.phase == 'M') {
        std::fprintf(f, "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%llu,\"args\":{\"name\":\"", pid,
                     static_cast<unsigned long long>(e.track));
        write_escaped(f, e.name);
        std::fputs("\"}}", f);
        return;
    }
    std::fprintf(f, "{\"ph\":\"%c\",\"pid\":%d,\"tid\":%llu", e.phase, pid,
                 static_cast<unsigned long long>(e.track));
    write_time(f, e.nanos);
    std::fputs(",\"name\":\"", f);
    write_escaped(f, e.name);
    std::fputs("\"", f);
    switch (e.phase) {
        case 'i': std::fputs(",\"s\":\"t\"", f); break;
        case 's':
            std::fprintf(f, ",\"cat\":\"flow\",\"id\":%llu", static_cast<unsigned long long>(e.number + id_salt));
            break;
        case 'f':
            std::fprintf(f, ",\"cat\":\"flow\",\"bp\":\"e\",\"id\":%llu",
                         static_cast<unsigned long long>(e.number + id_salt));
            break;
        case 'C': std::fprintf(f, ",\"args\":{\"values\":%lld}}", static_cast<long long>(e.number)); return;
        default: break;
    }
    if (*e.key) {
        std::fprintf(f, ",\"args\":{\"%s\":\"", e.key);
        write_escaped(f, e.object);
        std::fputs("\"}", f);
    }
    std::fputs("}", f);
}

// take_in appends a child's part (its events, each written by write_event)
// to *into, and removes it; a child that never wrote one (it was killed)
// adds nothing.
void take_in(std::string* into, const std::string& part) {
    std::FILE* in = std::fopen(part.c_str(), "r");
    if (!in) return;
    char chunk[65536];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, in)) > 0;) into->append(chunk, n);
    std::fclose(in);
    std::remove(part.c_str());
}

std::string part_of(const std::string& path, int pid) { return path + "." + std::to_string(pid) + ".part"; }

void Trace::flush() {
    std::lock_guard<std::mutex> hold(mutex);
    if (written.empty()) return;
    const bool part = written != path;
    // (A part is written under another name and renamed once whole.)
    const std::string target = part ? written + ".tmp" : written;
    std::FILE* f = std::fopen(target.c_str(), "w");
    if (!f) {
        logger().error("CSP_TRACE: cannot write '{}': {}", target, std::strerror(errno));
        return;
    }
    write_all(f, part);
    if (!part) std::fputs("\n]}\n", f);
    std::fclose(f);
    if (part) std::rename(target.c_str(), written.c_str());
    events.clear();
    parts.clear();
}

void Trace::write_all(std::FILE* f, bool part) {
    const int group = static_cast<int>(getpid()) + pid_salt;
    if (!part) std::fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", f);
    else std::fputs(",\n", f);
    // The OS process's name first (so that every later event follows one).
    std::fprintf(f, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"args\":{\"name\":\"", group);
    write_escaped(f, os_name + " (pid " + std::to_string(getpid()) + ")");
    std::fputs("\"}}", f);
    // Track 0: threads that are not processes (instants and flow ends of a
    // thread that has not used csp; in a simulation, the thread that runs
    // it).
    std::fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"%s\"}}",
                 group, "threads, not processes");
    for (const Event& e : events) write_event(f, e, id_salt, pid_salt);
    std::fwrite(parts.data(), 1, parts.size(), f);
}

// blocked_name: a wait's slice name, its reason's phrase without "is ",
// then the object it is about ("blocked reading from channel 'jobs'").
std::string_view blocked_name(const WaitReason* why, char (&room)[320]) noexcept {
    std::string_view phrase = why && why->phrase ? why->phrase : "is waiting";
    if (phrase.substr(0, 3) == "is ") phrase.remove_prefix(3);
    const int n = why && why->object
                      ? std::snprintf(room, sizeof room, "%.*s '%s'", static_cast<int>(phrase.size()), phrase.data(),
                                      why->object)
                      : std::snprintf(room, sizeof room, "%.*s", static_cast<int>(phrase.size()), phrase.data());
    return {room, std::min(sizeof room - 1, static_cast<std::size_t>(std::max(n, 0)))};
}

}  // namespace

void trace_process_start(Parker* p, const char* name) noexcept {
    if (!tracing()) return;
    Trace& t = trace();
    {
        std::lock_guard<std::mutex> hold(t.mutex);
        p->trace_track = ++t.tracks;
        if (!t.channels) {
            try {
                t.channels = arena_new<std::atomic<std::uint32_t>>(0u);
            } catch (const std::bad_alloc&) {
            }
        }
    }
    t.add('M', p, name);
    t.add('B', p, name);
}

void trace_process_end(const Parker* p) noexcept {
    if (tracing()) trace().add('E', p, "");
}

bool trace_block_begin(const Parker* p, const WaitReason* why) noexcept {
    // (None for a thread that is no process: such threads share track 0,
    // where their slices would interleave.)
    if (!p || (simulating() && p->is_thread)) return false;
    char room[320];
    const bool about = why && why->object;
    return trace().add('B', p, blocked_name(why, room), about ? why->object : "", about ? "on" : "");
}

void trace_block_end(const Parker* p) noexcept { trace().add('E', p, ""); }

void trace_event(const char* what, const char* object) noexcept {
    if (!tracing()) return;
    // (Threads' tracks are named when they register, processes' when they start.)
    trace().add('i', current_if_known(), what, object ? object : "", object ? "on" : "");
}

void trace_exception(const char* message) noexcept {
    if (tracing()) trace().add('i', current_if_known(), "exception", message, "message");
}

void trace_flow_start(const Parker* writer, const char* channel, std::uint64_t id) noexcept {
    trace().add('s', writer, channel, {}, "", id);
}

void trace_flow_end(const Parker* reader, const char* channel, std::uint64_t id, const char* how) noexcept {
    trace().add('f', reader, channel, how, "end", id);
}

std::uint32_t trace_channel_number() noexcept {
    std::atomic<std::uint32_t>* n = trace().channels;
    return n ? n->fetch_add(1, std::memory_order_relaxed) + 1 : 0;
}

void trace_counter(const char* name, std::int64_t n) noexcept {
    trace().add('C', current_if_known(), name, {}, "", static_cast<std::uint64_t>(n));
}

void trace_os_process_name(std::string_view name) noexcept {
    if (!tracing()) return;
    try {
        std::lock_guard<std::mutex> hold(trace().mutex);
        trace().os_name = name;
    } catch (const std::bad_alloc&) {
    }
}

void trace_child_reaped(int pid) noexcept {
    if (!tracing()) return;
    try {
        std::lock_guard<std::mutex> hold(trace().mutex);
        take_in(&trace().parts, part_of(trace().path, pid));
    } catch (const std::bad_alloc&) {
    }
}

void trace_after_fork_in_child() noexcept {
    if (!tracing()) return;
    Trace& t = trace();
    // (Another thread of the parent may have held the mutex at the fork, in
    // the middle of changing what it guards: this OS process gets a fresh
    // mutex and fresh containers over the old ones, whose memory it leaves
    // alone. The events are the parent's to write.)
    ::new (&t.mutex) std::mutex;
    ::new (&t.events) std::vector<Event>;
    ::new (&t.parts) std::string;
    try {
        t.written = part_of(t.path, static_cast<int>(getpid()));
    } catch (const std::bad_alloc&) {
        t.written.clear();
        trace_detail::observe(trace_detail::kTracing, false);
    }
}

void trace_child_exit() noexcept {
    if (!tracing()) return;
    trace().flush();
    trace().written.clear();  // (nothing more: an exit handler would flush again)
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

namespace {
// Simulations tracing without CSP_TRACE (two may run at once, on two
// threads); under the trace's mutex.
int g_simulations_tracing = 0;
}  // namespace

bool trace_for_simulation() noexcept {
    Trace& t = trace();
    std::lock_guard<std::mutex> hold(t.mutex);
    if (!t.path.empty()) return false;  // CSP_TRACE asked: its file, at exit
    if (g_simulations_tracing++ == 0) trace_detail::observe(trace_detail::kTracing, true);
    return true;
}

void trace_after_simulation() noexcept {
    Trace& t = trace();
    std::lock_guard<std::mutex> hold(t.mutex);
    if (--g_simulations_tracing > 0) return;
    trace_detail::observe(trace_detail::kTracing, false);
    t.events.clear();
}

bool trace_write_to(const std::string& path) noexcept {
    Trace& t = trace();
    std::lock_guard<std::mutex> hold(t.mutex);
    // (A new file only: the name is predictable, in a directory others write.)
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    std::FILE* f = fd >= 0 ? ::fdopen(fd, "w") : nullptr;
    if (!f) {
        if (fd >= 0) ::close(fd);
        logger().error("csp::sim: cannot write the failing run's trace to '{}': {}", path, std::strerror(errno));
        return false;
    }
    t.os_name = program_invocation_short_name;
    t.write_all(f, false);
    std::fputs("\n]}\n", f);
    const bool ok = std::fclose(f) == 0;
    t.events.clear();
    return ok;
}

std::int64_t trace_start_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(trace().start.time_since_epoch()).count();
}

void trace_align(std::int64_t start_ns, std::uint64_t id_salt, std::int32_t pid_salt) noexcept {
    if (!tracing()) return;
    Trace& t = trace();
    std::lock_guard<std::mutex> hold(t.mutex);
    const std::chrono::steady_clock::time_point start{std::chrono::nanoseconds(start_ns)};
    const std::int64_t moved = std::chrono::duration_cast<std::chrono::nanoseconds>(t.start - start).count();
    for (Event& e : t.events) e.nanos += moved;  // (those recorded so far: since the new start)
    t.start = start;
    t.id_salt = id_salt;
    t.pid_salt = pid_salt;
}

std::string trace_hand_over() {
    if (!tracing()) return {};
    Trace& t = trace();
    std::lock_guard<std::mutex> hold(t.mutex);
    trace_detail::observe(trace_detail::kTracing, false);
    char* text = nullptr;
    std::size_t size = 0;
    std::FILE* f = open_memstream(&text, &size);
    if (!f) throw std::bad_alloc();
    t.write_all(f, true);
    std::fclose(f);
    std::string part(text, size);
    std::free(text);
    t.events.clear();
    t.parts.clear();
    t.written.clear();  // (rank 0 writes it)
    return part;
}

void trace_take_in(const std::string& part) noexcept {
    if (!tracing()) return;
    try {
        std::lock_guard<std::mutex> hold(trace().mutex);
        trace().parts += part;
    } catch (const std::bad_alloc&) {
    }
}

}  // namespace csp::runtime
