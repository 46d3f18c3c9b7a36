// across.cpp: deadlocks across OS processes.
//
// Owns: the network's count of crossings and list of inboxes (one shared
// record in the arena, made by the first runtime, before any fork), each
// inbox's quiet note and report lines, and the breaking of a deadlock that
// spans OS processes. Must hold: every wake-up that one OS process gives
// another bumps `crossings` once it is visible (the parker pushed on the
// inbox, the thread notified: park.cpp), and whatever makes an OS process
// run again from outside its processes (the end of a child it waits for:
// fork.cpp) counts as running there and bumps it too.
//
// The detector of one OS process (deadlock.cpp) ends its walk with "quiet
// across" when every process waits in a Blocked, Join, Remote or OsJoin
// wait with at least one Remote or OsJoin, no worker runs, no thread runs
// and its inbox is empty. It read `crossings` before the walk (C) and notes
// C in its inbox. When every live inbox holds C and `crossings` is still C,
// there is a deadlock. Why: suppose some OS process X was not quiet at that
// last read. X noted C while quiet, so it ran again afterwards, because a
// waker W of another OS process Y readied one of its processes (nothing
// else can: its own timers, io calls and unknown threads forbid the note,
// and the end of a child counts as a crossing). W's bump comes after its
// wake-up, which came after X's look (or X would not have been quiet), so
// after X read C: it must come after the last read, which saw C. Y was
// running when W woke X; Y noted C while quiet too, and could not note it
// while W ran (W's own bump was still to come, and the note reads the count
// first), so Y noted it before W ran, and ran again afterwards, woken by a
// waker of a third OS process, earlier still... An infinite regress of
// distinct wake-ups, each before the last: impossible. So every OS process
// was quiet at that read, with nothing in flight: nobody can wake anybody.
// (Outside the model: a child killed by a signal from outside while the
// network is deadlocked.)
//
// The cost stays off the communication path: a worker that goes idle in a
// quiet OS process notes it (a few loads and stores) and looks at the
// other inboxes; only when all look quiet does it list the OS threads (for
// unknown ones) and write its lines and the tokens of its waits,
// "confirming", and ring the inboxes
// not yet confirmed at C, whose workers wake, look again and confirm. One
// noted at an older count, while the others agree, is rung to look again
// (the count moves with wake-ups between other OS processes, and a quiet
// one would not look again by itself). Whoever finds every inbox confirmed
// at C, and `crossings` still C, breaks the deadlock (one per C: `broken`):
// it joins the lines into the report, kept in the arena, and ends every
// Blocked and Remote wait listed in the inboxes, in whatever OS process
// (end_waits); a process so woken reads the report there (broken_across).
#include "runtime/scheduler.hpp"

#include "runtime/log.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace csp::runtime {

namespace {

struct Across {
    std::atomic<std::uint64_t> crossings{0};
    std::atomic<Inbox*> inboxes{nullptr};  // a list, pushed on only
    std::atomic<std::uint64_t> broken{0};  // the last C + 1 broken
    std::atomic<std::uint32_t> drawn{0};   // a deadlock's graph was written (across_graph_drawn)
    SharedLock lock;                       // the report of the last one
    char* report = nullptr;
    std::uint32_t report_size = 0;
    std::uint32_t report_capacity = 0;
};

// The network's record: made by the first OS process's runtime, inherited
// (the same address in the arena) by every child.
// (Atomic: the thread that draws the graph on SIGUSR1 asks, from before the
// runtime is made, whether a deadlock's graph is there: across_graph_drawn.)
std::atomic<Across*> g_across{nullptr};

Across* across() noexcept { return g_across.load(std::memory_order_acquire); }

std::atomic<AcrossPart> g_part{nullptr};
std::atomic<AcrossJoin> g_join{nullptr};

void push_inbox(Inbox* box) noexcept {
    Across* a = across();
    Inbox* head = a->inboxes.load(std::memory_order_relaxed);
    do {
        box->next_inbox = head;
    } while (!a->inboxes.compare_exchange_weak(head, box, std::memory_order_acq_rel, std::memory_order_relaxed));
}

template <class See>
void each_live(See see) {
    for (Inbox* box = across()->inboxes.load(std::memory_order_acquire); box; box = box->next_inbox) {
        if (box->live.load(std::memory_order_seq_cst) != 0) see(box);
    }
}

constexpr std::uint64_t noted(std::uint64_t seen) noexcept { return (seen + 1) << 1; }
constexpr std::uint64_t kConfirmed = 1;

// look_again: rouse a quiet OS process to look again, once per note.
void look_again(Inbox* box, std::uint64_t note) noexcept {
    std::uint64_t rung = box->rung.load(std::memory_order_relaxed);
    do {
        if (rung >= note) return;
    } while (!box->rung.compare_exchange_weak(rung, note, std::memory_order_relaxed));
    ring(box);
}

// Confirmed: its lines, and its titled part of the explanation.
struct Said {
    std::string lines;
    std::pair<std::string, std::string> part;
};

// title: "OS process 14061, multiprocess 'x'" (or "..., the program's own").
std::string title(const Inbox* box) {
    return "OS process " + std::to_string(box->pid) +
           (box->name[0] ? std::string(", ") + box->name : std::string(", the program's own"));
}

Said said_by(Inbox* box) {
    Locked<SharedLock> hold(box->lines_lock);
    Said said{std::string(box->lines ? box->lines : "", box->lines_size), {title(box), {}}};
    said.part.second.assign(box->part ? box->part : "", box->part_size);
    return said;
}

// fit: room for n T at *buffer (capacity *capacity), in the arena; what it
// held is not kept.
template <class T>
void fit(T** buffer, std::uint32_t* capacity, std::size_t n) {
    if (n <= *capacity) return;
    T* fresh = static_cast<T*>(arena_allocate(n * sizeof(T), alignof(T)));
    arena_free(*buffer);
    *buffer = fresh;
    *capacity = static_cast<std::uint32_t>(n);
}

// keep: text into an inbox's buffer (lock held); its size is 0 until it is
// whole, and stays 0 without room (std::bad_alloc).
void keep(char** buffer, std::uint32_t* size, std::uint32_t* capacity, const std::string& text) {
    *size = 0;
    fit(buffer, capacity, text.size());
    std::copy(text.begin(), text.end(), *buffer);
    *size = static_cast<std::uint32_t>(text.size());
}

void write_lines(Inbox* box, const std::string& text, const std::string& part,
                 const std::vector<Inbox::Stopped>& stopped) {
    Locked<SharedLock> hold(box->lines_lock);
    fit(&box->lines, &box->lines_capacity, text.size());
    fit(&box->stopped, &box->stopped_capacity, stopped.size());
    std::copy(text.begin(), text.end(), box->lines);
    std::copy(stopped.begin(), stopped.end(), box->stopped);
    box->lines_size = static_cast<std::uint32_t>(text.size());
    box->stopped_size = static_cast<std::uint32_t>(stopped.size());
    try {  // (the explanation is worth less than the confirmation: without room, none)
        keep(&box->part, &box->part_size, &box->part_capacity, part);
    } catch (const std::bad_alloc&) {
    }
}

// end_waits: every wait the confirmed inboxes list, ended with kDeadlocked.
// All are won first, then readied, as the breaker of one OS process does
// (Registry::wake_deadlocked): none of them unwinds (retiring or poisoning
// what another still waits on) before every one has its outcome. Nobody can
// wake them meanwhile (that is what was proven), and a parker, in the arena
// for good, is only won in the wait its token names.
bool end_waits() noexcept {
    std::vector<Inbox::Stopped> all;
    std::vector<SharedLock*> locks;
    try {
        each_live([&](Inbox* box) {
            Locked<SharedLock> hold(box->lines_lock);
            all.insert(all.end(), box->stopped, box->stopped + box->stopped_size);
        });
        for (const Inbox::Stopped& w : all) {
            if (SharedLock* l = w.parker->completer_lock) locks.push_back(l);
        }
    } catch (const std::bad_alloc&) {
        return false;
    }
    // (In one order, should a process that runs after all hold some: the
    // unwinding of an earlier deadlock, say.)
    std::sort(locks.begin(), locks.end());
    locks.erase(std::unique(locks.begin(), locks.end()), locks.end());
    for (SharedLock* l : locks) l->lock();
    std::size_t won = 0;
    for (Inbox::Stopped& w : all) {
        if (try_complete(w.parker, w.token, kDeadlocked)) {
            w.parker->broken_across = true;  // (read by it once readied)
            all[won++] = w;
        }
    }
    for (SharedLock* l : locks) l->unlock();
    for (std::size_t i = 0; i < won; ++i) ready(all[i].parker);
    return true;
}

// try_break: every live inbox confirmed at `seen`? Then break (once).
bool try_break(Inbox* mine, std::uint64_t seen) noexcept {
    const std::uint64_t want = noted(seen) | kConfirmed;
    bool all = true;
    each_live([&](Inbox* box) {
        const std::uint64_t q = box->quiet.load(std::memory_order_seq_cst);
        if (q == want) return;
        all = false;
        // Running (0): it looks again when it goes quiet. Noted and not
        // confirmed, or noted at an older count: rouse it to look (each
        // time: it may have looked in vain while another ran, and only a
        // confirmation, which is progress, rings).
        if (q != 0 && box != mine) ring(box);
    });
    if (!all || crossings_now() != seen) return false;
    std::atomic<std::uint64_t>& broken = across()->broken;
    std::uint64_t last = broken.load(std::memory_order_acquire);
    do {
        if (last >= seen + 1) return false;  // (somebody else broke this one)
    } while (!broken.compare_exchange_weak(last, seen + 1, std::memory_order_acq_rel));
    // The breaker runs (its OS process is not quiet while it wakes others,
    // who may be its own alone), and the count moves: every OS process notes
    // again before another deadlock can be found.
    Runtime& r = started();
    r.running_threads.fetch_add(1, std::memory_order_seq_cst);
    left_quiet();
    crossed();
    std::string report = "deadlock: every process is blocked and nothing can wake any of them (across OS processes):";
    try {
        std::vector<Inbox*> boxes;  // (the list is newest first: the program's own comes first)
        each_live([&](Inbox* box) { boxes.push_back(box); });
        std::vector<std::pair<std::string, std::string>> parts;
        for (auto it = boxes.rbegin(); it != boxes.rend(); ++it) {
            Said said = said_by(*it);
            report += said.lines;
            parts.push_back(std::move(said.part));
        }
        // (The wait-for cycle through them all, and the graph.)
        if (AcrossJoin join = g_join.load(std::memory_order_acquire)) report += join(parts);
    } catch (...) {  // (the breaking matters more than the words)
    }
    {
        Across* a = across();
        Locked<SharedLock> hold(a->lock);
        try {
            fit(&a->report, &a->report_capacity, report.size());
            std::copy(report.begin(), report.end(), a->report);
            a->report_size = static_cast<std::uint32_t>(report.size());
        } catch (const std::bad_alloc&) {  // (the old report, or none)
        }
    }
    const bool ended = end_waits();
    if (ended) logger().info("{}", report);
    r.thread_wakes.fetch_add(1, std::memory_order_seq_cst);
    r.running_threads.fetch_sub(1, std::memory_order_seq_cst);
    r.check_quiet();  // (no memory to end them: looked at again, at the new count)
    return ended;
}

}  // namespace

void across_start(Runtime& r) {
    Inbox* box = r.inbox;
    if (!g_in_child) {
        g_across.store(arena_new<Across>(), std::memory_order_release);
        push_inbox(box);
        box->live.store(1, std::memory_order_seq_cst);
    }
    // (A child's was adopted by its parent before the fork.)
}

void across_adopt(Inbox* box, bool made) {
    box->quiet.store(0, std::memory_order_relaxed);
    box->rung.store(0, std::memory_order_relaxed);
    box->lines_size = 0;
    box->part_size = 0;
    box->stopped_size = 0;
    box->name[0] = '\0';
    if (made) push_inbox(box);
    box->live.store(1, std::memory_order_seq_cst);
}

void across_reaped(Inbox* box) noexcept { box->live.store(0, std::memory_order_seq_cst); }

std::uint64_t crossings_now() noexcept {
    Across* a = across();
    return a ? a->crossings.load(std::memory_order_seq_cst) : 0;
}

void crossed() noexcept {
    if (Across* a = across()) a->crossings.fetch_add(1, std::memory_order_seq_cst);
}

// (Only when something does run: a worker woken for nothing, say by a ring
// from look_again, stays noted.)
void left_quiet() noexcept {
    Inbox* box = g_local_inbox;
    if (box && box->quiet.load(std::memory_order_relaxed) != 0) box->quiet.store(0, std::memory_order_seq_cst);
}

void name_os_process(std::string_view name) noexcept {
    if (Inbox* box = g_given_inbox) {
        const std::size_t n = std::min(name.size(), sizeof box->name - 1);
        std::memcpy(box->name, name.data(), n);
        box->name[n] = '\0';
    }
}

bool note_quiet(Inbox* box, std::uint64_t seen) noexcept {
    if (!across()) return false;
    // (A wake-up pushed here is one this OS process has yet to run.)
    if (box->head.load(std::memory_order_seq_cst) || box->rescues.load(std::memory_order_seq_cst)) return false;
    const std::uint64_t note = noted(seen);
    if ((box->quiet.load(std::memory_order_relaxed) & ~kConfirmed) != note) {
        box->quiet.store(note, std::memory_order_seq_cst);
    }
    // Others noted at an older count are rung to look again, but only when
    // nobody runs (one that runs notes again when it stops, and rings then):
    // two quiet OS processes would otherwise ring each other for as long as
    // two others talk.
    bool all = true, running = false;
    Inbox* older[8];
    std::size_t n_older = 0;
    each_live([&](Inbox* other) {
        if (other == box) return;
        const std::uint64_t q = other->quiet.load(std::memory_order_seq_cst) & ~kConfirmed;
        if (q == note) return;
        all = false;
        if (q == 0) running = true;
        else if (n_older < std::size(older)) older[n_older++] = other;
    });
    if (!running) {
        for (std::size_t i = 0; i < n_older; ++i) look_again(older[i], note);
    }
    return all;
}

bool confirm_quiet(Inbox* box, std::uint64_t seen, const std::string& lines, const std::string& part,
                   const std::vector<Inbox::Stopped>& stopped) noexcept {
    const std::uint64_t note = noted(seen);
    try {
        write_lines(box, "\n  in " + title(box) + ":" + lines, part, stopped);
    } catch (const std::bad_alloc&) {
        return false;  // (not confirmed: looked at again later)
    }
    std::uint64_t q = note;
    // (Only over its own note: one that has moved on since is not confirmed.)
    if (!box->quiet.compare_exchange_strong(q, note | kConfirmed, std::memory_order_seq_cst) &&
        q != (note | kConfirmed)) {
        return false;
    }
    return try_break(box, seen);
}

void set_across_explainer(AcrossPart part, AcrossJoin join) noexcept {
    g_part.store(part, std::memory_order_release);
    g_join.store(join, std::memory_order_release);
}

std::string across_part(const std::vector<Parker*>& parked) {
    AcrossPart part = g_part.load(std::memory_order_acquire);
    if (!part) return {};
    try {
        return part(parked);
    } catch (...) {
        return {};  // (the report goes without it)
    }
}

void note_across_graph_drawn() noexcept {
    if (Across* a = across()) a->drawn.store(1, std::memory_order_release);
}

bool across_graph_drawn() noexcept {
    Across* a = across();
    return a && a->drawn.load(std::memory_order_acquire) != 0;
}

std::string across_report() {
    Across* a = across();
    if (!a) return {};
    Locked<SharedLock> hold(a->lock);
    return a->report ? std::string(a->report, a->report_size) : std::string();
}

// ---- Views of the whole network (csp::write_graph) ----------------------------
//
// Whoever draws the network asks every other live OS process for its part:
// it counts an ask in that inbox (`asked`) and rings it. A worker of that
// OS process answers as it goes idle (answer_asked): its part, made as
// write_graph makes one, in `shown`, then `answered` moves up to the ask it
// saw. The asker waits for every answer up to its limit, ringing again now
// and then (a worker awake when rung goes idle later and looks then), and
// answers asks made of its own OS process meanwhile (two OS processes may
// draw at once). A part read once `answered` has reached one's ask was made
// after the ask.

std::string part_now() {
    std::string part;
    with_registered([](const std::vector<Parker*>& all, void* ctx) { *static_cast<std::string*>(ctx) = across_part(all); },
                    &part);
    return part;
}

void answer_asked() noexcept {
    Inbox* box = g_local_inbox;
    if (!box) return;
    const std::uint64_t ask = box->asked.load(std::memory_order_acquire);
    if (box->answered.load(std::memory_order_acquire) >= ask || !across()) return;
    try {
        const std::string part = part_now();
        Locked<SharedLock> hold(box->lines_lock);
        keep(&box->shown, &box->shown_size, &box->shown_capacity, part);
    } catch (...) {  // (no memory: an empty part, as an answer all the same)
    }
    std::uint64_t was = box->answered.load(std::memory_order_relaxed);
    while (was < ask && !box->answered.compare_exchange_weak(was, ask, std::memory_order_release)) {
    }
}

std::vector<std::pair<std::string, std::string>> parts_across(std::chrono::milliseconds wait) {
    Inbox* mine = g_local_inbox;
    if (!mine || !across()) return {};
    struct Asked {
        Inbox* box;
        std::uint64_t ask;
    };
    std::vector<Asked> boxes;  // (the list is newest first: the program's own last)
    each_live([&](Inbox* box) { boxes.push_back({box, box == mine ? 0 : box->asked.fetch_add(1) + 1}); });
    if (boxes.size() < 2) return {};
    std::reverse(boxes.begin(), boxes.end());
    auto waiting = [&](const Asked& a) {
        return a.box != mine && a.box->live.load(std::memory_order_acquire) != 0 &&
               a.box->answered.load(std::memory_order_acquire) < a.ask;
    };
    const auto until = std::chrono::steady_clock::now() + wait;
    for (unsigned round = 0;; ++round) {
        bool any = false;
        for (const Asked& a : boxes) {
            if (!waiting(a)) continue;
            any = true;
            if (round % 20 == 0) ring(a.box);
        }
        if (!any || std::chrono::steady_clock::now() >= until) break;
        answer_asked();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<std::pair<std::string, std::string>> parts;
    for (const Asked& a : boxes) {
        if (a.box == mine) {
            parts.push_back({title(a.box), part_now()});
        } else if (a.box->live.load(std::memory_order_acquire) == 0) {
            continue;  // (it has ended meanwhile)
        } else if (waiting(a)) {
            parts.push_back({title(a.box) + " (did not answer within " + std::to_string(wait.count()) +
                                 " ms: its workers busy, or it is stopped)",
                             {}});
        } else {
            Locked<SharedLock> hold(a.box->lines_lock);
            parts.push_back({title(a.box), std::string(a.box->shown ? a.box->shown : "", a.box->shown_size)});
        }
    }
    return parts;
}

}  // namespace csp::runtime
