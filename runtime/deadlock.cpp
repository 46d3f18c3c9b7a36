// deadlock.cpp: the registry of live processes and the deadlock detector.
//
// Owns: the Registry (its lock, the parker slots, the sets of OS threads
// known to use csp and taken as not using it) and the breaking of a
// deadlock. Must hold: a parker is in the registry from before its process
// can run until after it can wake anybody; the registry lock is held while
// the breaker wakes processes, so none of them can leave (and free its
// parker) during the walk.
//
// Deadlock detection costs nothing on the communication path (as in Go, the
// check runs when the system may have gone quiet): when a worker is about to
// sleep and when a thread parks in a Blocked or Join wait, if every worker is
// idle and no registered thread is running, the detector walks the registry.
// It is a deadlock when every registered process is parked in a Blocked or
// Join wait: runnable fibers are in state Running, a woken thread is
// Notified, and sleeps, timeouts and io calls are Timed waits, any of which
// means somebody can still make progress. Remote waits (on something shared
// with another OS process) and OsJoin waits (for a child OS process) make it
// a matter for every OS process of the network: across.cpp.
//
// One more party can wake a process: a plain thread that holds a channel
// end but has not used csp yet (an end made in main and moved into a
// std::thread, before or after the runtime started). So the detector also
// lists the OS threads: one that is neither a worker, an io helper nor a
// registered thread vetoes the report, unless it was there when libcsp was
// loaded, before main (a sanitizer's background thread, a library's: taken
// as not using csp; see ThreadsAtLoad).
//
// The report travels with the wake-up: each process the breaker wakes gets a
// reference to it in its private record (ProcessRecord::deadlock), which
// deadlock_report() reads, so a later deadlock cannot overwrite what an
// earlier one's processes are about to throw.
#include "runtime/scheduler.hpp"

#include "runtime/log.hpp"

#include <algorithm>
#include <cstdlib>
#include <dirent.h>
#include <sched.h>
#include <sstream>
#include <thread>
#include <sys/syscall.h>
#include <unistd.h>

namespace csp::runtime {
namespace {

std::set<int> os_threads() {
    std::set<int> tids;
    if (DIR* d = opendir("/proc/self/task")) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] != '.') tids.insert(std::atoi(e->d_name));
        }
        closedir(d);
    }
    return tids;
}

// ThreadsAtLoad: the OS threads there when libcsp is loaded (before main,
// for a program linked with it), but the loading one. Under ThreadSanitizer
// a thread is started and joined first: TSan starts its background thread
// with the program's first pthread_create, which would otherwise be a
// thread of the program's own.
struct ThreadsAtLoad {
    std::set<int> tids;
    ThreadsAtLoad() {
#if defined(__SANITIZE_THREAD__)
        std::thread([] {}).join();
#endif
        tids = os_threads();
        tids.erase(static_cast<int>(syscall(SYS_gettid)));
    }
};
const ThreadsAtLoad g_threads_at_load;

}  // namespace

int this_tid() noexcept { return static_cast<int>(syscall(SYS_gettid)); }

ProcessBody* body_of(const Parker* p) noexcept { return p->is_thread ? nullptr : task_of(p)->body.get(); }

const char* name_of(const Parker* p) noexcept {
    if (p->is_thread) return thread_of(p)->name.c_str();
    auto* t = task_of(p);
    return t->body ? t->body->name_c_str() : "process";
}

void Registry::add(Parker* const* p, std::size_t n) {
    Locked<SpinLock> hold(lock_);
    const std::size_t fresh = n > free_.size() ? n - free_.size() : 0;
    // The only steps that can throw. free_ can then hold every slot, so
    // remove never allocates.
    slots_.reserve(slots_.size() + fresh);
    free_.reserve(slots_.capacity());
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t slot;
        if (!free_.empty()) {
            slot = free_.back();
            free_.pop_back();
        } else {
            slot = static_cast<std::uint32_t>(slots_.size());
            slots_.push_back(nullptr);
        }
        slots_[slot] = p[i];
        p[i]->registry_slot = slot;
    }
}

void Registry::remove(Parker* p) noexcept {
    Locked<SpinLock> hold(lock_);
    slots_[p->registry_slot] = nullptr;
    free_.push_back(p->registry_slot);  // (never reallocates: see add)
}

void Registry::note_thread(bool known) {
    Locked<SpinLock> hold(lock_);
    const int tid = this_tid();
    if (known) {
        known_threads_.insert(tid);
        older_threads_.erase(tid);
    } else {
        known_threads_.erase(tid);
        older_threads_.insert(tid);
    }
}

void Registry::note_foreign_threads() {
    const std::set<int> now = os_threads();
    Locked<SpinLock> hold(lock_);
    for (int tid : now) {
        if (!known_threads_.count(tid)) older_threads_.insert(tid);
    }
}

void ignore_threads_started_so_far() { rt().registry.note_foreign_threads(); }

namespace {
// (Not the registry's: such a thread may start before the runtime exists.)
std::atomic<int> g_quiet_tids[kQuietThreads];

bool quiet_thread(int tid) noexcept {
    for (const auto& t : g_quiet_tids) {
        if (t.load(std::memory_order_acquire) == tid) return true;
    }
    return false;
}
}  // namespace

void ignore_this_thread() noexcept {
    const int tid = this_tid();
    for (auto& t : g_quiet_tids) {
        int free = 0;
        if (t.compare_exchange_strong(free, tid, std::memory_order_acq_rel)) return;
    }
    logger().warn("more than {} helper threads: the deadlock detector counts the others", kQuietThreads);
}

void Registry::note_older_threads() {
    Locked<SpinLock> hold(lock_);
    older_threads_.insert(g_threads_at_load.tids.begin(), g_threads_at_load.tids.end());
}

namespace {
// (Atomic: set by the World on main while workers may already be looking.)
std::atomic<void (*)()> g_rank_quiet_hook{nullptr};
}

void set_rank_quiet_hook(void (*hook)()) noexcept {
    g_rank_quiet_hook.store(hook, std::memory_order_release);
}

namespace {
std::atomic<DeadlockExplainer> g_explainer{nullptr};
std::atomic<void (*)() noexcept> g_reported{nullptr};
}

void set_deadlock_explainer(DeadlockExplainer explain, void (*reported)() noexcept) noexcept {
    g_reported.store(reported, std::memory_order_release);
    g_explainer.store(explain, std::memory_order_release);
}

std::vector<Parker*> Registry::registered() const {
    std::vector<Parker*> all;
    for (Parker* p : slots_) {
        if (p) all.push_back(p);
    }
    // (Simulated: in the order they were made, threads first, so a report
    // reads the same on replay. Slots are reused in whatever order earlier
    // runs freed them.)
    if (simulating()) [[unlikely]] {
        auto made = [](const Parker* p) { return p->is_thread ? 0 : 1 + task_of(p)->sim_id; };
        std::stable_sort(all.begin(), all.end(), [&](const Parker* a, const Parker* b) { return made(a) < made(b); });
    }
    return all;
}

void Registry::with_all(void (*see)(const std::vector<Parker*>&, void*), void* ctx) {
    Locked<SpinLock> hold(lock_);
    see(registered(), ctx);
}

void with_registered(void (*see)(const std::vector<Parker*>& parked, void* ctx), void* ctx) {
    rt().registry.with_all(see, ctx);
}

WaitSeen wait_seen(const Parker* p) noexcept {
    const std::uint64_t word = p->selection.load(std::memory_order_acquire);
    const bool parked = p->state.load(std::memory_order_acquire) == kParked;
    return {word, parked && static_cast<std::uint32_t>(word) == kWaiting};
}

std::string Registry::explained() const {
    DeadlockExplainer explain = g_explainer.load(std::memory_order_acquire);
    if (!explain) return {};
    try {
        return explain(registered());
    } catch (...) {
        return {};  // (the report goes without it)
    }
}

Registry::Look Registry::look(std::vector<Parker*>* blocked) const {
    bool ranks = false, across = false;
    for (Parker* p : slots_) {
        if (!p) continue;
        if (p->state.load(std::memory_order_acquire) != kParked) return Look::Busy;
        const WaitKind kind = p->wait_kind.load(std::memory_order_relaxed);
        if (!can_deadlock(kind)) return Look::Busy;  // a timer or io call can still wake it
        if (kind == WaitKind::Blocked || kind == WaitKind::Rank || kind == WaitKind::Remote) blocked->push_back(p);
        ranks |= kind == WaitKind::Rank || kind == WaitKind::RankJoin;
        across |= kind == WaitKind::Remote || kind == WaitKind::OsJoin;
    }
    // (Both at once: neither the ranks nor the OS processes alone can tell,
    // and they do not ask each other.)
    if (ranks && across) return Look::Busy;
    if (blocked->empty() && !ranks && !across) return Look::Nobody;  // nobody left at all: a normal end
    return ranks ? Look::QuietForRanks : across ? Look::QuietAcross : Look::Deadlocked;
}

std::string Registry::lines(const char* indent) const {
    std::ostringstream out;
    for (Parker* p : registered()) {
        const WaitReason* why = p->wait_reason.load(std::memory_order_relaxed);
        out << "\n" << indent << "process '" << name_of(p) << "' " << (why ? why->phrase : "is waiting");
        if (why && why->object) out << " '" << why->object << "'";
    }
    return out.str();
}

bool Registry::wake_deadlocked(const std::vector<Parker*>& blocked, std::shared_ptr<const std::string> report,
                               bool proven) noexcept {
    // A wait with a completer lock is ended only under that lock (see
    // complete_locked): take those locks first. One that is held means
    // somebody runs after all: then this was no deadlock (the holder parks
    // or idles again, and the detector looks again); unless every rank has
    // been proven quiet, when the holder is a process woken since by the
    // deadlock's own unwinding elsewhere: wait for it.
    std::vector<SharedLock*> locks;
    for (Parker* p : blocked) {
        SharedLock* l = p->completer_lock;
        if (!l || std::find(locks.begin(), locks.end(), l) != locks.end()) continue;
        while (!l->try_lock()) {
            if (!proven) {
                for (SharedLock* held : locks) held->unlock();
                return false;
            }
            sched_yield();
        }
        locks.push_back(l);
    }
    // Wake them while holding the registry: a woken process may end and
    // free its parker, and only after leaving the registry (under this
    // lock) can it do so. Each gets the report before its wake-up. Every
    // wait is won first, and only then is any readied: one readied at once
    // could run on another worker and end a wait of the deadlock not yet
    // won (a choice's, whose channels' locks are not held here) with a
    // value, and that process would go on without its DeadlockError, its
    // partner having been told of the deadlock (tests/mpi.cpp, "choices ...
    // nobody can serve", on one rank: 1 run in some hundreds under load).
    std::vector<Parker*> won;
    try {
        won.reserve(blocked.size());
    } catch (const std::bad_alloc&) {  // (then each is readied as it is won)
    }
    for (Parker* p : blocked) {
        const std::uint64_t word = p->selection.load();
        if (static_cast<std::uint32_t>(word) != kWaiting) continue;
        record_of(p)->deadlock = report;  // (read by it only once this wake has won)
        p->broken_across = false;
        if (!try_complete(p, word >> 32, kDeadlocked)) continue;
        if (won.size() < won.capacity()) won.push_back(p);
        else ready(p);
    }
    for (Parker* p : won) ready(p);
    for (SharedLock* held : locks) held->unlock();
    return true;
}

void Registry::break_deadlock(std::uint64_t thread_wakes_seen) noexcept {
    Runtime& r = started();
    // Simulated, the first worker alone breaks a deadlock: the processes it
    // wakes go to it one by one, and were it picking meanwhile (roused by the
    // first), a pick would see some of them and not others, which differs
    // from run to run, and a replay would not fit. It looks as it goes idle.
    if (simulating() && (!t_worker || t_worker->index != 0)) [[unlikely]] {
        (void)r.workers.front()->rouse();
        return;
    }
    // (Read before the walk: see across.cpp.)
    const std::uint64_t crossings = crossings_now();
    std::vector<Parker*> blocked;
    std::shared_ptr<const std::string> report;
    std::string across_lines, part;
    std::vector<Inbox::Stopped> stopped;  // (across: each wait, by its token)
    {
        Locked<SpinLock> hold(lock_);
        const Look seen = look(&blocked);
        if (seen == Look::Busy || seen == Look::Nobody) return;
        // Was it one moment? Idle workers stay idle until roused (and the
        // rouser takes them off the count), fibers run only on workers, and
        // a thread that ran meanwhile moved thread_wakes. So if nothing
        // changed, every state read above held at once.
        if (r.thread_wakes.load(std::memory_order_seq_cst) != thread_wakes_seen ||
            r.running_threads.load(std::memory_order_seq_cst) != 0 ||
            r.idle.load(std::memory_order_seq_cst) != static_cast<int>(r.workers.size())) {
            return;
        }
        // Quiet here, but a wait may end from another OS process: noted in
        // the inbox; the rest (the threads, the lines) only once every OS
        // process looks quiet, as this runs whenever a worker goes idle.
        if (seen == Look::QuietAcross && !note_quiet(r.inbox, crossings)) return;
        for (int tid : os_threads()) {
            if (!known_threads_.count(tid) && !older_threads_.count(tid) && !quiet_thread(tid)) {
                logger().debug("no deadlock report: thread {} may still use a channel", tid);
                return;
            }
        }
        if (seen == Look::QuietForRanks) {
            // Only every rank together can tell (libcsp-mpi asks them). Not
            // the lines: this is no still moment. Another worker serving
            // MPI can wake a Rank wait now, and the process it woke run on
            // and free the choice or channel its line names (a SIGSEGV in
            // lines(), conformance-mpi-4ranks on 2 workers). They are read
            // by whoever receives for the rank, when rank 0 asks.
            try {
                if (auto* hook = g_rank_quiet_hook.load(std::memory_order_acquire)) hook();
            } catch (...) {
                // no memory for the message: look again later
            }
            return;
        }
        try {
            if (seen == Look::QuietAcross) {
                across_lines = lines("    ");  // (under a line naming the OS process)
                part = across_part(registered());
                for (Parker* p : blocked) {
                    const std::uint64_t word = p->selection.load(std::memory_order_acquire);
                    if (static_cast<std::uint32_t>(word) == kWaiting) stopped.push_back({p, word >> 32});
                }
            } else {
                report = std::make_shared<const std::string>(
                    "deadlock: every process is blocked and nothing can wake any of them:" + lines() + explained());
            }
        } catch (...) {
            return;  // no memory for the report: look again later
        }
        if (seen == Look::Deadlocked && !wake_deadlocked(blocked, report, false)) return;
    }
    if (!report) {
        // (Outside the registry's lock. The cycle and the graph come from
        // the breaker: across.cpp.)
        (void)confirm_quiet(r.inbox, crossings, across_lines, part, stopped);
        return;
    }
    logger().info("{}", *report);
    if (auto* reported = g_reported.load(std::memory_order_acquire)) reported();
}

bool Registry::quiet_for_ranks(std::string* lines) {
    std::vector<Parker*> blocked;
    Locked<SpinLock> hold(lock_);
    Runtime& r = started();
    if (look(&blocked) != Look::QuietForRanks || r.running_threads.load(std::memory_order_seq_cst) != 0 ||
        r.idle.load(std::memory_order_seq_cst) != static_cast<int>(r.workers.size())) {
        return false;
    }
    if (lines) *lines = this->lines();
    return true;
}

void Registry::break_for_ranks(std::shared_ptr<const std::string> report) noexcept {
    // Every Blocked and Rank wait still waiting, whatever else has started
    // since: the unwinding of another rank that broke first may already
    // have reached this one (a poison), and what it woke must not keep the
    // rest waiting for ever.
    std::vector<Parker*> blocked;
    Locked<SpinLock> hold(lock_);
    for (Parker* p : slots_) {
        if (!p || p->state.load(std::memory_order_acquire) != kParked) continue;
        const WaitKind kind = p->wait_kind.load(std::memory_order_relaxed);
        if (kind == WaitKind::Blocked || kind == WaitKind::Rank) blocked.push_back(p);
    }
    (void)wake_deadlocked(blocked, std::move(report), true);
}

bool rank_quiet_now(std::string* lines) { return rt().registry.quiet_for_ranks(lines); }

void break_rank_deadlock(const std::string& report) {
    rt().registry.break_for_ranks(std::make_shared<const std::string>(report));
    logger().info("{}", report);
}

std::string deadlock_report() {
    Parker* me = current();
    if (me->broken_across) {  // (ended by a breaker in any OS process: across.cpp)
        me->broken_across = false;
        return across_report();
    }
    const auto& report = record_of(me)->deadlock;
    return report ? *report : std::string();
}

}  // namespace csp::runtime
