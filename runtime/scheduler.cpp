// scheduler.cpp: worker threads, run queues, park/ready, timers, deadlock
// detection.
//
// Fiber states and where they live:
//   runnable  in exactly one place: a worker's `run_next` slot or its queue
//   running   `Worker::current` of the worker running it
//   parked    nowhere: only whoever wins its selection word may ready() it
//
// The park rule (runtime.hpp) means nobody can ready a fiber before it has
// switched away: finish_park, on the context it switched to, notes it Parked
// and only then arms its timer and runs its Release (unlocking the channel
// its waiter is on). ready() of a fiber is thus a plain push to a run queue,
// with no atomic handshake. Threads park on a futex: their state moves
// Running -> Parked (CAS by the thread) and ready() exchanges it to Notified,
// which also covers a ready() that comes before the thread sleeps.
//
// Deadlock detection costs nothing on the communication path (as in Go, the
// check runs when the system may have gone quiet): when a worker is about to
// sleep and when a thread parks in a Channel or Join wait, if every worker is
// idle and no registered thread is running, the detector walks the registry.
// It is a deadlock when every registered process is parked in a Channel or
// Join wait: runnable fibers are in state Running, a woken thread is
// Notified, and sleeps, timeouts and io calls are Timed waits, any of which
// means somebody can still make progress.
//
// One more party can wake a process: a plain thread that holds a channel
// end but has not used csp yet (an end made in main and moved into a
// std::thread). So the detector also lists the OS threads: a thread started
// after the runtime that is neither a worker, an io helper nor a registered
// thread vetoes the report. (Threads older than the runtime, such as a
// sanitizer's background thread, are taken as not using csp.)
#include "runtime/runtime.hpp"

#include "runtime/arena.hpp"
#include "runtime/context.hpp"
#include "runtime/free_list.hpp"
#include "runtime/futex.hpp"
#include "runtime/log.hpp"
#include "runtime/sanitizers.hpp"
#include "runtime/spin_lock.hpp"
#include "runtime/trace.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <dirent.h>
#include <sched.h>
#include <csignal>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <set>
#include <sys/syscall.h>
#include <unistd.h>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace csp::runtime {

// Inbox: how fibers of one OS process are woken from another. A waker in
// another OS process pushes the parker on `head` (a lock-free stack: pushes
// only, and the owner takes the whole list at once, so no ABA) and rouses
// one of the owner's sleeping workers through its sleep word, a shared futex
// word in the arena. Workers take the list when they look for work. Never
// freed: a late waker may still ring it after its OS process has ended.
struct Inbox {
    std::atomic<Parker*> head{nullptr};
    std::atomic<std::uint32_t>* words = nullptr;  // the workers' sleep words
    std::uint32_t count = 0;
};

Inbox* g_local_inbox = nullptr;

namespace {

enum : std::uint32_t { kRunning = 0, kParked = 1, kNotified = 2 };

// A worker's sleep word: 0 awake, 1 asleep (or about to be), 2 roused from
// another OS process (which cannot take it off this process's idle count).
enum : std::uint32_t { kAwake = 0, kAsleep = 1, kRousedRemotely = 2 };

// True in a child made by run_os_process.
bool g_in_child = false;

bool can_deadlock(WaitKind k) noexcept { return k == WaitKind::Channel || k == WaitKind::Join; }

struct Worker;

struct Timer {
    std::chrono::steady_clock::time_point deadline;
    Parker* parker;
    std::uint64_t token;
    bool operator>(const Timer& o) const noexcept { return deadline > o.deadline; }
};

// Task: the private record of a fiber process.
struct Task {
    Parker* parker = nullptr;
    Context context;
    std::unique_ptr<ProcessBody> body;
    Task* next = nullptr;  // run queue link
    // What finish_park must do once this fiber has switched away.
    Release release;
    bool timed = false;
    Timer timer{};
    std::atomic<int> home{0};  // the worker it last ran on: a hint, read by remote wakers
};

// ThreadRecord: the private record of a plain thread that uses csp.
struct ThreadRecord {
    Parker* parker = nullptr;
    std::string name;
    ThreadRecord();
    ~ThreadRecord();
};

struct Worker {
    int index = 0;
    Context scheduler;       // the worker thread's own stack
    Task* current = nullptr;
    Task* run_next = nullptr;  // owner only: the process just woken here
    // Owner only: processes this worker woke that run_next displaced. No
    // atomics: nobody else can see them. They are moved to the shared queue
    // (publish) whenever another worker is idle, so they can be stolen.
    Task* local_head = nullptr;
    Task* local_tail = nullptr;
    unsigned picks = 0;   // owner only: to look at the shared queue first now and then
    unsigned streak = 0;  // owner only: run_next taken this many times in a row
    // The queue: FIFO, shared with stealers and remote wakers.
    SpinLock queue_lock;
    Task* head = nullptr;
    Task* tail = nullptr;
    std::atomic<std::int64_t> queued{0};
    // The sleep word (kAwake/kAsleep/kRousedRemotely), in the arena so that
    // another OS process can rouse the worker (see Inbox).
    std::atomic<std::uint32_t>& sleeping;
    explicit Worker(std::atomic<std::uint32_t>& word) noexcept : sleeping(word) {}
    // Timers of the processes that parked on this worker (owner only). A
    // timer whose wait ended otherwise stays until it is due or swept.
    std::vector<Timer> timers;
    std::size_t sweep_at = 1024;  // sweep stale timers when the heap grows to this
    std::thread thread;

    void push(Task* t) noexcept {
        t->next = nullptr;
        Locked<SpinLock> hold(queue_lock);
        if (tail) tail->next = t; else head = t;
        tail = t;
        queued.fetch_add(1, std::memory_order_seq_cst);
    }
    Task* pop() noexcept {
        if (queued.load(std::memory_order_relaxed) == 0) return nullptr;
        Locked<SpinLock> hold(queue_lock);
        Task* t = head;
        if (t) {
            head = t->next;
            if (!head) tail = nullptr;
            queued.fetch_sub(1, std::memory_order_relaxed);
        }
        return t;
    }
    void push_local(Task* t) noexcept {
        t->next = nullptr;
        if (local_tail) local_tail->next = t; else local_head = t;
        local_tail = t;
    }
    Task* pop_local() noexcept {
        Task* t = local_head;
        if (t) {
            local_head = t->next;
            if (!local_head) local_tail = nullptr;
        }
        return t;
    }
    // publish moves the private list to the shared queue, where idle workers
    // can steal from it.
    void publish() noexcept {
        if (!local_head) return;
        Locked<SpinLock> hold(queue_lock);
        std::int64_t n = 0;
        for (Task* t = local_head; t; t = t->next) ++n;
        if (tail) tail->next = local_head; else head = local_head;
        tail = local_tail;
        local_head = local_tail = nullptr;
        queued.fetch_add(n, std::memory_order_seq_cst);
    }
    // rouse wakes the worker if it sleeps; true when it did. The rouser
    // takes it off the idle count at once (see the deadlock accounting).
    bool rouse() noexcept;
    // drain_inbox takes the fibers woken from other OS processes.
    bool drain_inbox() noexcept;
    void loop() noexcept;
    Task* find_work() noexcept;
    bool fire_timers() noexcept;
    [[gnu::noinline]] void add_timer(const Timer& t) noexcept;  // (kept off the park path)
};

struct Runtime {
    Inbox* inbox = nullptr;
    std::vector<std::unique_ptr<Worker>> workers;
    std::atomic<std::int64_t> running_threads{0};  // registered, not in a Channel/Join park
    std::atomic<std::int64_t> live{0};      // fiber processes not yet ended
    std::atomic<std::uint32_t> live_zero{1};  // futex word: 1 when live == 0
    std::atomic<int> idle{0};
    std::atomic<bool> stopping{false};
    std::atomic<unsigned> next_worker{0};
    // The registry: every live parker (fiber processes, threads that use
    // csp), in slots (null: free) rather than a list, so that one leaving
    // touches its own slot and not its neighbours, which a million processes
    // scatter over memory. Its lock also guards the thread sets below.
    SpinLock registry_lock;
    std::vector<Parker*> registry;
    std::vector<std::uint32_t> free_slots;
    std::set<int> known_threads;    // tids: workers, io helpers, registered threads
    std::set<int> older_threads;    // tids taken as not using csp: older than the runtime, or done with it
    std::string last_report;

    // io helper pool
    std::mutex io_mutex;
    std::condition_variable io_cv;
    struct IoJob { const std::function<void()>* call; Parker* parker; std::uint64_t token; };
    std::deque<IoJob> io_jobs;
    int io_idle = 0;  // helper threads waiting for a job
    std::vector<std::thread> io_pool;
    bool io_stop = false;

    Runtime();
    ~Runtime();
    void wake_idle_worker() noexcept;
    void detect_deadlock(std::uint64_t thread_wakes_seen) noexcept;
    // check_quiet is the cheap filter before detect_deadlock.
    // thread_wakes counts threads returning from a Channel or Join park: the
    // registry walk is not one atomic look, so a thread that wakes and parks
    // again (perhaps waking fibers meanwhile) while it runs must void it.
    std::atomic<std::uint64_t> thread_wakes{0};
    void check_quiet() noexcept {
        const std::uint64_t wakes = thread_wakes.load(std::memory_order_seq_cst);
        if (running_threads.load(std::memory_order_seq_cst) == 0 &&
            idle.load(std::memory_order_seq_cst) == static_cast<int>(workers.size())) {
            detect_deadlock(wakes);
        }
    }
    // add_to_registry: may throw std::bad_alloc (then nothing was added).
    void add_to_registry(Parker* const* p, std::size_t n);
    void add_to_registry(Parker* p) { add_to_registry(&p, 1); }
    void remove_from_registry(Parker* p) noexcept;
    void io_loop() noexcept;
};

// initial-exec: libcsp is linked at start-up, so its thread-locals sit in the
// static TLS block and need no __tls_get_addr call on the hot path.
__attribute__((tls_model("initial-exec"))) thread_local Worker* t_worker = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local std::unique_ptr<ThreadRecord> t_thread;

Runtime& rt();

// The runtime, for paths that can only run once it exists (a worker is
// running, or a parker exists): no initialisation guard on the hot path.
// Published by rt() once fully made.
std::atomic<Runtime*> g_runtime{nullptr};
inline Runtime& started() noexcept { return *g_runtime.load(std::memory_order_relaxed); }

// Read the worker through a call the compiler cannot fold: after a context
// switch the same fiber may be running on another thread, and a thread-local
// address cached across the switch would be the old thread's.
__attribute__((noinline)) Worker* this_worker() noexcept {
    asm volatile("");
    return t_worker;
}

int configured_threads() noexcept {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("CSP_THREADS")) {
        char* end = nullptr;
        long v = std::strtol(env, &end, 10);
        if (end != env && *end == '\0' && v >= 1 && v <= 1024) {
            n = static_cast<int>(v);
        } else {
            logger().warn("CSP_THREADS='{}' is not a worker count (1..1024); using {}", env,
                          n < 1 ? 1 : n);
        }
    }
    return n < 1 ? 1 : n;
}

// Parkers are pooled (FreeList): a network that starts a million processes
// makes and frees a million, and the arena's general allocator (a best-fit
// tree under a process-shared mutex) alone cost about a quarter of
// bench/spawn's instructions. A forked child starts with an empty pool
// (after_fork_in_child): the parent goes on using its own free parkers.
FreeList g_free_parkers;  // storage in the arena
FreeList g_free_tasks;    // on the heap

// The pools behind pooled_allocate: class k holds blocks of 16 (k + 1) bytes.
constexpr std::size_t kPoolGrain = 16;
constexpr std::size_t kPoolClasses = kPooledMax / kPoolGrain;
FreeList g_pools[kPoolClasses];

std::size_t pool_class(std::size_t size) noexcept { return (size + kPoolGrain - 1) / kPoolGrain - 1; }

// free_task: a task's storage back to the pool (the task is destroyed).
void free_task(Task* t) noexcept {
    t->~Task();
    g_free_tasks.give(t);
}

// discard_task: a task whose fiber never ran is freed, its stack back to the
// pool.
void discard_task(Task* t) noexcept {
    discard_context(t->context);
    free_task(t);
}

Parker* new_parker(void* owner, bool is_thread) {
    void* storage = g_free_parkers.take();
    Parker* p = storage ? ::new (storage) Parker : arena_new<Parker>();
    p->owner = owner;
    p->home = g_local_inbox;
    p->is_thread = is_thread;
    return p;
}

}  // namespace

void* pooled_allocate(std::size_t size) {
#ifndef CSP_ASAN
    if (size - 1 < kPooledMax) {
        if (void* p = g_pools[pool_class(size)].take()) return p;
        return ::operator new((pool_class(size) + 1) * kPoolGrain);
    }
#endif
    return ::operator new(size);
}

void pooled_free(void* p, std::size_t size) noexcept {
#ifndef CSP_ASAN
    if (size - 1 < kPooledMax) {
        g_pools[pool_class(size)].give(p);
        return;
    }
#endif
    ::operator delete(p);
}

namespace {

void release_parker(Parker* p) noexcept {
    if (p->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    arena_free(p->upper_block);
    p->~Parker();
    g_free_parkers.give(p);
}

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

int this_tid() noexcept { return static_cast<int>(syscall(SYS_gettid)); }

// note_thread: the calling thread starts (true) or stops (false) using csp.
// One that stops is exiting (its thread-locals are being destroyed), or is
// main running static destructors: it will not wake anybody any more, so it
// counts with the older threads from then on.
void note_thread(bool known) {
    Runtime& r = rt();
    Locked<SpinLock> hold(r.registry_lock);
    const int tid = this_tid();
    if (known) {
        r.known_threads.insert(tid);
        r.older_threads.erase(tid);
    } else {
        r.known_threads.erase(tid);
        r.older_threads.insert(tid);
    }
}

Runtime::Runtime() {
    const int n = configured_threads();
    inbox = arena_new<Inbox>();
    inbox->words = static_cast<std::atomic<std::uint32_t>*>(
        arena_allocate(sizeof(std::atomic<std::uint32_t>) * static_cast<std::size_t>(n)));
    inbox->count = static_cast<std::uint32_t>(n);
    g_local_inbox = inbox;
    workers.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        auto* word = ::new (static_cast<void*>(&inbox->words[i])) std::atomic<std::uint32_t>(kAwake);
        workers.push_back(std::make_unique<Worker>(*word));
        workers.back()->index = i;
    }
    for (auto& w : workers) {
        Worker* wp = w.get();
        wp->thread = std::thread([wp] { wp->loop(); });
    }
    // Taken after starting the workers: ThreadSanitizer starts its
    // background thread with the program's first pthread_create.
    older_threads = os_threads();
    older_threads.erase(this_tid());  // the thread starting us may well use csp

    logger().debug("runtime started with {} worker threads", n);
}

Runtime::~Runtime() {
    // main's scope of the runtime ends: join the processes still running
    // (spawned ones), then stop the workers.
    if (t_worker) {
        // exit() called from inside a process: nothing can be joined from here.
        for (auto& w : workers) w->thread.detach();
        return;
    }
    while (live.load(std::memory_order_acquire) != 0) futex_wait(live_zero, 0);
    stopping.store(true);
    for (auto& w : workers) {
        w->sleeping.store(0);
        futex_wake(w->sleeping, 1);
    }
    for (auto& w : workers) w->thread.join();
    {
        std::lock_guard<std::mutex> hold(io_mutex);
        io_stop = true;
    }
    io_cv.notify_all();
    for (auto& t : io_pool) t.join();
}

// The runtime is made on first use and stopped by a static destructor at
// exit. A forked child drops its copy of the parent's (whose threads it does
// not have) and makes its own on first use: hence a pointer, not a static.
struct RuntimeOwner {
    ~RuntimeOwner() {
        if (!g_in_child) delete g_runtime.load();
    }
};

Runtime& rt() {
    if (Runtime* r = g_runtime.load(std::memory_order_acquire)) return *r;
    static RuntimeOwner owner;  // destroyed after everything made before first use
    static SpinLock making;     // (its workers wait here until it is published)
    Locked<SpinLock> hold(making);
    if (!g_runtime.load(std::memory_order_relaxed)) g_runtime.store(new Runtime, std::memory_order_release);
    return *g_runtime.load(std::memory_order_relaxed);
}

void Runtime::wake_idle_worker() noexcept {
    if (idle.load(std::memory_order_seq_cst) == 0) return;
    for (auto& w : workers) {
        if (w->rouse()) return;
    }
}

void Runtime::add_to_registry(Parker* const* p, std::size_t n) {
    Locked<SpinLock> hold(registry_lock);
    const std::size_t fresh = n > free_slots.size() ? n - free_slots.size() : 0;
    // The only steps that can throw. free_slots can then hold every slot, so
    // remove_from_registry never allocates.
    registry.reserve(registry.size() + fresh);
    free_slots.reserve(registry.capacity());
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t slot;
        if (!free_slots.empty()) {
            slot = free_slots.back();
            free_slots.pop_back();
        } else {
            slot = static_cast<std::uint32_t>(registry.size());
            registry.push_back(nullptr);
        }
        registry[slot] = p[i];
        p[i]->registry_slot = slot;
    }
}

void Runtime::remove_from_registry(Parker* p) noexcept {
    Locked<SpinLock> hold(registry_lock);
    registry[p->registry_slot] = nullptr;
    free_slots.push_back(p->registry_slot);  // (never reallocates: see add_to_registry)
}

const char* name_of(const Parker* p) noexcept {
    if (p->is_thread) return static_cast<ThreadRecord*>(p->owner)->name.c_str();
    auto* t = static_cast<Task*>(p->owner);
    return t->body ? t->body->name_c_str() : "process";
}

bool Worker::rouse() noexcept {
    std::uint32_t one = kAsleep;
    if (!sleeping.compare_exchange_strong(one, kAwake, std::memory_order_seq_cst)) return false;
    started().idle.fetch_sub(1, std::memory_order_seq_cst);
    futex_wake(sleeping, 1);
    return true;
}

void Runtime::detect_deadlock(std::uint64_t thread_wakes_seen) noexcept {
    std::vector<Parker*> blocked;
    std::string report;
    {
        Locked<SpinLock> hold(registry_lock);
        for (Parker* p : registry) {
            if (!p) continue;
            if (p->state.load(std::memory_order_acquire) != kParked) return;
            const WaitKind kind = p->wait_kind.load(std::memory_order_relaxed);
            if (kind == WaitKind::Channel) blocked.push_back(p);
            else if (kind != WaitKind::Join) return;  // a timer or io call can still wake it
        }
        if (blocked.empty()) return;  // nobody left at all: a normal end
        // Was it one moment? Idle workers stay idle until roused (and the
        // rouser takes them off the count), fibers run only on workers, and
        // a thread that ran meanwhile moved thread_wakes. So if nothing
        // changed, every state read above held at once.
        if (thread_wakes.load(std::memory_order_seq_cst) != thread_wakes_seen ||
            running_threads.load(std::memory_order_seq_cst) != 0 ||
            idle.load(std::memory_order_seq_cst) != static_cast<int>(workers.size())) {
            return;
        }
        for (int tid : os_threads()) {
            if (!known_threads.count(tid) && !older_threads.count(tid)) {
                logger().debug("no deadlock report: thread {} may still use a channel", tid);
                return;
            }
        }
        std::ostringstream out;
        out << "deadlock: every process is blocked and nothing can wake any of them:";
        for (Parker* p : registry) {
            if (!p) continue;
            if (p->wait_kind.load(std::memory_order_relaxed) == WaitKind::Channel) {
                out << "\n  process '" << name_of(p) << "' blocked on channel '"
                    << (p->wait_on ? p->wait_on : "?") << "'";
            } else {
                out << "\n  process '" << name_of(p) << "' waiting for the processes it runs";
            }
        }
        // A plain channel wait is ended only under its channel's lock (see
        // complete_locked): take those locks first. One that is held means
        // somebody runs after all: then this was no deadlock (the holder
        // parks or idles again, and the detector looks again).
        std::vector<SpinLock*> locks;
        for (Parker* p : blocked) {
            SpinLock* l = p->wait_lock;
            if (!l || std::find(locks.begin(), locks.end(), l) != locks.end()) continue;
            if (!l->try_lock()) {
                for (SpinLock* held : locks) held->unlock();
                return;
            }
            locks.push_back(l);
        }
        report = out.str();
        last_report = report;
        // Wake them while holding the registry: a woken process may end and
        // free its parker, and only after leaving the registry (under this
        // lock) can it do so.
        for (Parker* p : blocked) {
            const std::uint64_t word = p->selection.load();
            if (static_cast<std::uint32_t>(word) == kWaiting) wake(p, word >> 32, kDeadlocked);
        }
        for (SpinLock* held : locks) held->unlock();
    }
    logger().info("{}", report);
}

// ---- fibers -----------------------------------------------------------------

// Runs on the destination of a park switch, once the parking fiber is fully
// suspended: only now may anybody find it and ready it (the park rule).
void finish_park(void* arg) noexcept {
    auto* t = static_cast<Task*>(arg);
    t->parker->state.store(kParked, std::memory_order_release);  // read by the deadlock detector
    if (t->timed) {
        t->timed = false;
        this_worker()->add_timer(t->timer);
    }
    const Release release = std::exchange(t->release, Release{});
    release();
}

void run_task(Worker* w, Task* t) noexcept {
    w->current = t;
    t->home.store(w->index, std::memory_order_relaxed);
    switch_context(w->scheduler, t->context, nullptr, nullptr);
}

// Pick the next runnable task of this worker without stealing: the one just
// woken (run_next), else the private list, else the shared queue.
//
// Two processes that keep waking each other would hand the worker back and
// forth through run_next for ever, and nothing queued would run (there is no
// preemption). So once run_next has been taken kRunNextStreak times in a
// row, ready() sends the process it wakes to the back of the private list
// instead, and everything queued runs first (Go gets a similar effect from
// the woken goroutine inheriting the time slice). A small streak keeps the
// locality of run_next for pipelines and rings (commstime) and lets a busy
// many-to-one network batch up: in bench/stressed_alt the writers all get to
// block on their channels, so the reader's choices find a ready guard at
// once instead of parking every other message (2.6x fewer instructions per
// message than with a streak of 64). The shared queue, where wake-ups from
// other threads land, comes first every 61st pick, as in Go, so the private
// list cannot starve it.
constexpr unsigned kRunNextStreak = 4;

Task* next_local(Worker* w) noexcept {
    if (Task* t = w->run_next) {
        w->run_next = nullptr;
        ++w->streak;
        return t;
    }
    w->streak = 0;
    if (++w->picks % 61 == 0) {
        w->drain_inbox();
        if (Task* t = w->pop()) return t;
    }
    if (Task* t = w->pop_local()) return t;
    return w->pop();
}

// park_chores: what a parking fiber's worker does now and then, out of the
// park path: fire due timers; hand surplus runnable processes to idle workers.
[[gnu::noinline]] void park_chores(Worker* w) noexcept {
    if (!w->timers.empty()) w->fire_timers();
    if (w->local_head && started().idle.load(std::memory_order_relaxed) > 0) {
        w->publish();  // more runnable processes here than this worker can run
        started().wake_idle_worker();
    }
}

std::uint32_t park_fiber(Parker* p, WaitKind kind, const char* what, Release release) noexcept {
    p->wait_on = what;
    p->wait_kind.store(kind, std::memory_order_relaxed);
    Worker* w = t_worker;  // (read before the switch: cannot be stale yet)
    Task* me = w->current;
    me->release = release;
    if (!w->timers.empty() || (w->local_head && started().idle.load(std::memory_order_relaxed) > 0))
        [[unlikely]] park_chores(w);
    Task* next = next_local(w);
    if (next) {
        w->current = next;
        next->home.store(w->index, std::memory_order_relaxed);
        switch_context(me->context, next->context, finish_park, me);
    } else {
        w->current = nullptr;
        switch_context(me->context, w->scheduler, finish_park, me);
    }
    p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
    return outcome_of(p);
}

Context* task_entry(void* arg) noexcept {
    auto* t = static_cast<Task*>(arg);
    trace_process_start(t->parker, t->body->name_c_str());
    t->body->run();
    trace_process_end(t->parker);
    t->body.reset();
    Runtime& r = rt();
    r.remove_from_registry(t->parker);
    release_parker(t->parker);
    Worker* w = this_worker();
    if (r.live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        r.live_zero.store(1);
        futex_wake(r.live_zero, 1 << 30);
    }
    Task* next = next_local(w);
    free_task(t);
    if (next) {
        w->current = next;
        next->home.store(w->index, std::memory_order_relaxed);
        return &next->context;
    }
    w->current = nullptr;
    return &w->scheduler;
}

bool Worker::fire_timers() noexcept {
    const auto now = std::chrono::steady_clock::now();
    bool fired = false;
    while (!timers.empty() && timers.front().deadline <= now) {
        std::pop_heap(timers.begin(), timers.end(), std::greater<>{});
        Timer tm = timers.back();
        timers.pop_back();
        fired |= wake(tm.parker, tm.token, kTimedOut);
        release_parker(tm.parker);
    }
    return fired;
}

// A timer is stale once the wait it was set for has ended (a communication
// or another waker won it): it can never win, so it only holds memory and a
// parker reference. A process that loops on a choice with a long timeout
// would otherwise pile up one per choice; sweeping when the heap has doubled
// keeps the cost amortised O(1) per timer.
bool stale(const Timer& t) noexcept {
    return t.parker->selection.load(std::memory_order_acquire) != waiting_word(t.token);
}

void Worker::add_timer(const Timer& t) noexcept {
    if (timers.size() >= sweep_at) {
        std::size_t kept = 0;
        for (Timer& tm : timers) {
            if (stale(tm)) release_parker(tm.parker);
            else timers[kept++] = tm;
        }
        timers.resize(kept);
        std::make_heap(timers.begin(), timers.end(), std::greater<>{});
        sweep_at = std::max<std::size_t>(1024, 2 * kept);
    }
    timers.push_back(t);
    std::push_heap(timers.begin(), timers.end(), std::greater<>{});
}

bool Worker::drain_inbox() noexcept {
    Inbox* box = started().inbox;
    if (!box->head.load(std::memory_order_relaxed)) return false;
    Parker* p = box->head.exchange(nullptr, std::memory_order_seq_cst);
    // The stack holds the newest first: reverse it so wake-ups run in order.
    Parker* fifo = nullptr;
    while (p) {
        Parker* next = p->inbox_next;
        p->inbox_next = fifo;
        fifo = p;
        p = next;
    }
    for (p = fifo; p;) {
        Parker* next = p->inbox_next;
        p->state.store(kRunning, std::memory_order_relaxed);
        push_local(static_cast<Task*>(p->owner));
        p = next;
    }
    if (started().idle.load(std::memory_order_relaxed) > 0) {
        publish();
        started().wake_idle_worker();
    }
    return true;
}

Task* Worker::find_work() noexcept {
    if (!timers.empty()) fire_timers();
    drain_inbox();
    if (Task* t = next_local(this)) return t;
    // Steal from the others, starting after ourselves.
    Runtime& r = rt();
    const std::size_t n = r.workers.size();
    for (std::size_t i = 1; i < n; ++i) {
        Worker* victim = r.workers[(static_cast<std::size_t>(index) + i) % n].get();
        if (Task* t = victim->pop()) return t;
    }
    return nullptr;
}

void Worker::loop() noexcept {
    t_worker = this;
    note_thread(true);
    init_thread_context(scheduler);
    install_overflow_handler();
    Runtime& r = rt();
    for (;;) {
        if (Task* t = find_work()) {
            run_task(this, t);
            continue;
        }
        if (r.stopping.load(std::memory_order_acquire)) break;
        // Spin a little: a wake-up from the other core (or another OS
        // process) is often on its way, and sleeping costs a futex round
        // trip of tens of microseconds. Then yield a few times before
        // sleeping: the partner about to answer may be waiting for this very
        // core (a `pause` is ~30 ns here, so a spin of thousands of them held
        // such a partner off for over 100 us). Measured with an OS-process
        // ping-pong (bench/ipc) on 2 cores and pinned to one: 16 x 8 pauses
        // then up to 64 yields gave 0.6 us and 6 us one-way, where 200 x 20
        // pauses gave 1.4-116 us and 230 us.
        Task* found = nullptr;
        for (int i = 0; i < 16 && !found; ++i) {
            for (int j = 0; j < 8; ++j) __builtin_ia32_pause();
            found = find_work();
        }
        for (int i = 0; i < 64 && !found; ++i) {
            sched_yield();
            found = find_work();
        }
        if (found) {
            run_task(this, found);
            continue;
        }
        sleeping.store(kAsleep, std::memory_order_seq_cst);
        r.idle.fetch_add(1, std::memory_order_seq_cst);
        found = find_work();
        if (!found) {
            r.check_quiet();
            found = find_work();  // the detector may have woken processes here
        }
        if (!found && !r.stopping.load()) {
            std::int64_t timeout = -1;
            if (!timers.empty()) {
                auto d = timers.front().deadline - std::chrono::steady_clock::now();
                timeout = std::max<std::int64_t>(
                    0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
            }
            if (timeout != 0) futex_wait(sleeping, 1, timeout);
        }
        // Off the idle count, unless a rouser of this OS process has already
        // taken us off it (it leaves kAwake; one from another leaves 2).
        if (sleeping.exchange(kAwake, std::memory_order_seq_cst) != kAwake) {
            r.idle.fetch_sub(1, std::memory_order_seq_cst);
        }
        if (found) run_task(this, found);
    }
}

// ---- threads ----------------------------------------------------------------

ThreadRecord::ThreadRecord() {
    // Counted as running first: once note_thread makes it a known thread it
    // no longer vetoes a deadlock report, and until it is in the registry
    // only this count says that it may still wake somebody. (The other order
    // let the detector report a deadlock while this thread was registering.)
    Runtime& r = rt();
    r.running_threads.fetch_add(1, std::memory_order_seq_cst);
    note_thread(true);
    parker = new_parker(this, true);
    std::ostringstream id;
    id << std::this_thread::get_id();
    static std::atomic<bool> main_taken{false};
    bool expected = false;
    // The first thread to use csp is almost always main.
    name = main_taken.compare_exchange_strong(expected, true) ? "main" : "thread " + id.str();
    r.add_to_registry(parker);
    trace_process_start(parker, name.c_str());
}

ThreadRecord::~ThreadRecord() {
    note_thread(false);
    Runtime& r = rt();
    r.remove_from_registry(parker);
    release_parker(parker);
    r.running_threads.fetch_sub(1, std::memory_order_seq_cst);
    r.check_quiet();
}

ThreadRecord& this_thread_record() {
    if (!t_thread) t_thread = std::make_unique<ThreadRecord>();
    return *t_thread;
}

std::uint32_t park_thread(Parker* p, WaitKind kind, const char* what, std::int64_t timeout_ns,
                          std::uint64_t token, Release release) noexcept {
    p->wait_on = what;
    p->wait_kind.store(kind, std::memory_order_relaxed);
    // A ready() after this finds Running and leaves Notified: the CAS below
    // then fails and the thread goes on without sleeping.
    release();
    std::uint32_t expected = kRunning;
    if (p->state.compare_exchange_strong(expected, kParked, std::memory_order_acq_rel)) {
        if (can_deadlock(kind)) {
            rt().running_threads.fetch_sub(1, std::memory_order_seq_cst);
            rt().check_quiet();
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
        // A short spin first: the partner is often on another core (or in
        // another OS process) and about to answer; a futex sleep and wake-up
        // costs tens of microseconds on a virtual machine.
        for (int i = 0; i < 128 && p->state.load(std::memory_order_acquire) == kParked; ++i) {
            __builtin_ia32_pause();
        }
        for (int i = 0; i < 64 && p->state.load(std::memory_order_acquire) == kParked; ++i) sched_yield();
        while (p->state.load(std::memory_order_acquire) == kParked) {
            std::int64_t left = -1;
            if (timeout_ns >= 0) {
                left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           deadline - std::chrono::steady_clock::now()).count();
                if (left <= 0) {
                    // Our own timer: win the wait, then ready ourselves.
                    if (wake(p, token, kTimedOut)) continue;
                    timeout_ns = -1;  // somebody else won: their ready is coming
                    left = -1;
                }
            }
            futex_wait(p->state, kParked, left);
        }
        if (can_deadlock(kind)) {
            rt().running_threads.fetch_add(1, std::memory_order_seq_cst);
            rt().thread_wakes.fetch_add(1, std::memory_order_seq_cst);
        }
    }
    p->state.store(kRunning, std::memory_order_relaxed);
    p->wait_kind.store(WaitKind::Running, std::memory_order_relaxed);
    return outcome_of(p);
}

}  // namespace

// ---- the interface ------------------------------------------------------------

Parker* current() noexcept {
    // t_worker read directly: this function never switches, so the address
    // cannot go stale within it.
    if (Worker* w = t_worker; w && w->current) return w->current->parker;
    return this_thread_record().parker;
}

const char* current_name() noexcept {
    if (Worker* w = this_worker(); w && w->current && w->current->body) {
        return w->current->body->name_c_str();
    }
    return this_thread_record().name.c_str();
}

const Context* running_context() noexcept {
    // (Called from a signal handler: reads only.)
    if (Worker* w = t_worker; w && w->current) return &w->current->context;
    return nullptr;
}

bool in_fiber() noexcept {
    Worker* w = this_worker();
    return w && w->current;
}


std::uint32_t park(Parker* p, WaitKind kind, const char* what, Release release) noexcept {
    if (p->is_thread) return park_thread(p, kind, what, -1, 0, release);
    return park_fiber(p, kind, what, release);
}

std::uint32_t park_until(Parker* p, std::uint64_t token, WaitKind kind, const char* what,
                         std::chrono::steady_clock::time_point deadline, Release release) noexcept {
    if (p->is_thread) {
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        deadline - std::chrono::steady_clock::now()).count();
        return park_thread(p, kind, what, std::max<std::int64_t>(0, left), token, release);
    }
    Task* me = this_worker()->current;
    p->refs.fetch_add(1, std::memory_order_relaxed);  // the timer's reference
    me->timed = true;  // armed by finish_park, on this worker
    me->timer = Timer{deadline, p, token};
    return park_fiber(p, kind, what, release);
}

namespace {
// ready_elsewhere: ready() for everything but a fiber of this OS process
// woken from a worker (a thread, a fiber of another OS process, a fiber
// woken from a plain thread).
[[gnu::noinline]] void ready_elsewhere(Parker* p) noexcept {
    if (p->is_thread) {
        // The thread may run on, end and free its parker as soon as the
        // exchange publishes Notified: nothing of p is read after it. The
        // address stays mapped (arena); a stale futex wake-up is harmless, as
        // every futex waiter re-checks its word.
        if (p->state.exchange(kNotified, std::memory_order_acq_rel) == kParked) futex_wake(p->state, 1);
        return;
    }
    if (p->home != g_local_inbox) {
        // A fiber of another OS process: through its inbox.
        Inbox* box = p->home;
        Parker* old = box->head.load(std::memory_order_relaxed);
        do {
            p->inbox_next = old;
        } while (!box->head.compare_exchange_weak(old, p, std::memory_order_seq_cst,
                                                  std::memory_order_relaxed));
        // From here the owner may run the fiber, end it and free p.
        for (std::uint32_t i = 0; i < box->count; ++i) {
            std::uint32_t asleep = kAsleep;
            if (box->words[i].compare_exchange_strong(asleep, kRousedRemotely,
                                                      std::memory_order_seq_cst)) {
                futex_wake(box->words[i], 1);
                break;
            }
        }
        return;
    }
    // A fiber woken from a plain thread: to the queue of the worker it last
    // ran on.
    auto* t = static_cast<Task*>(p->owner);
    p->state.store(kRunning, std::memory_order_relaxed);
    Runtime& r = started();
    Worker* home = r.workers[static_cast<std::size_t>(t->home.load(std::memory_order_relaxed)) %
                             r.workers.size()].get();
    home->push(t);
    if (!home->rouse()) r.wake_idle_worker();
}

// share: a process woken on worker w goes where another worker can take it
// (some worker is idle).
[[gnu::noinline]] void share(Worker* w, Task* t) noexcept {
    w->publish();
    w->push(t);
    started().wake_idle_worker();
}
}  // namespace

void ready(Parker* p) noexcept {
    Worker* w = t_worker;  // (ready never switches: t_worker cannot go stale here)
    if (p->is_thread || p->home != g_local_inbox || !w) [[unlikely]] return ready_elsewhere(p);
    // A fiber, fully parked (the park rule), so nobody else touches it now,
    // woken by a communication on this worker: run it next, here (unless
    // run_next has had its streak; see next_local). What goes to a queue
    // stays private unless another worker is idle.
    auto* t = static_cast<Task*>(p->owner);
    p->state.store(kRunning, std::memory_order_relaxed);
    Task* queued = t;
    if (w->streak < kRunNextStreak) {
        queued = w->run_next;  // displaced, if any
        w->run_next = t;
    }
    if (queued) {
        if (started().idle.load(std::memory_order_relaxed) == 0) w->push_local(queued);
        else share(w, queued);
    }
}

namespace {

// make_task: a task record (pooled: a million processes' records lie close
// together, where a million stacks lie 128 KiB apart) and its stack, whose
// memory the fiber first touches when it first runs.
Task* make_task(std::unique_ptr<ProcessBody>& body) {
    void* storage = g_free_tasks.take();
    auto* t = storage ? ::new (storage) Task : new Task;
    try {
        make_context(t->context, task_entry, t);
    } catch (...) {
        free_task(t);
        throw;
    }
    try {
        t->parker = new_parker(t, false);
    } catch (...) {
        discard_task(t);
        throw;
    }
    t->body = std::move(body);
    t->context.name = t->body->name_c_str();
    return t;
}

}  // namespace

void start_processes(std::vector<std::unique_ptr<ProcessBody>>& bodies) {
    // A thread that starts processes is a possible waker of them: register
    // it first, or the first process to block could look deadlocked.
    if (!in_fiber()) this_thread_record();
    Runtime& r = rt();
    std::vector<Task*> tasks;
    tasks.reserve(bodies.size());
    try {
        for (auto& b : bodies) tasks.push_back(make_task(b));
        std::vector<Parker*> parkers(tasks.size());
        for (std::size_t i = 0; i < tasks.size(); ++i) parkers[i] = tasks[i]->parker;
        r.add_to_registry(parkers.data(), parkers.size());
    } catch (...) {
        for (Task* t : tasks) {  // never started: undo quietly
            release_parker(t->parker);
            discard_task(t);
        }
        throw;
    }
    if (r.live.fetch_add(static_cast<std::int64_t>(tasks.size()), std::memory_order_acq_rel) == 0) {
        r.live_zero.store(0);
    }
    if (Worker* w = this_worker()) {
        // From a process: queue them here; idle workers steal.
        for (Task* t : tasks) {
            t->home.store(w->index, std::memory_order_relaxed);
            w->push(t);
        }
        r.wake_idle_worker();
        return;
    }
    // From a thread: deal them out over the workers, then wake each once.
    const std::size_t n = r.workers.size();
    std::size_t i = r.next_worker.fetch_add(1, std::memory_order_relaxed);
    for (Task* t : tasks) {
        Worker* w = r.workers[i++ % n].get();
        t->home.store(w->index, std::memory_order_relaxed);
        w->push(t);
    }
    for (std::size_t k = 0; k < std::min(n, tasks.size()); ++k) r.workers[k]->rouse();
}

void start_process(std::unique_ptr<ProcessBody> body) {
    std::vector<std::unique_ptr<ProcessBody>> one;
    one.push_back(std::move(body));
    start_processes(one);
}

void Join::arrive() noexcept {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // Last one: wake the joiner if it waits. Its lock is held until it has
    // parked, so a joiner seen here can be readied.
    Parker* p;
    {
        Locked<SpinLock> hold(lock_);
        p = joiner_;
    }
    if (p) wake(p, token_, kWoken);
}

void Join::wait() noexcept {
    lock_.lock();
    if (remaining_.load(std::memory_order_acquire) == 0) {
        lock_.unlock();
        return;
    }
    Parker* me = current();
    token_ = begin_wait(me);
    joiner_ = me;
    park(me, WaitKind::Join, "join", unlocking(lock_));
}

void sleep_for(std::chrono::nanoseconds duration) noexcept {
    if (duration <= std::chrono::nanoseconds::zero()) return;
    if (!in_fiber()) {
        std::this_thread::sleep_for(duration);
        return;
    }
    Parker* me = current();
    const std::uint64_t token = begin_wait(me);
    park_until(me, token, WaitKind::Timed, "sleep", std::chrono::steady_clock::now() + duration);
}

void Runtime::io_loop() noexcept {
    note_thread(true);
    std::unique_lock<std::mutex> hold(io_mutex);
    for (;;) {
        ++io_idle;
        io_cv.wait(hold, [this] { return io_stop || !io_jobs.empty(); });
        --io_idle;
        if (io_jobs.empty()) return;
        IoJob job = io_jobs.front();
        io_jobs.pop_front();
        hold.unlock();
        (*job.call)();
        wake(job.parker, job.token, kWoken);
        hold.lock();
    }
}

void run_io(const std::function<void()>& call) noexcept {
    if (!in_fiber()) {
        call();
        return;
    }
    // The job is handed to the helpers only once this fiber has parked (the
    // park rule): a quick job could otherwise wake it while it switches away.
    struct Submit {
        Runtime* r;
        Runtime::IoJob job;
    } submit{&rt(), {&call, current(), 0}};
    submit.job.token = begin_wait(submit.job.parker);
    park(submit.job.parker, WaitKind::Timed, "io", {[](void* arg) noexcept {
        auto* s = static_cast<Submit*>(arg);
        Runtime& r = *s->r;
        {
            std::lock_guard<std::mutex> hold(r.io_mutex);
            r.io_jobs.push_back(s->job);
            // One helper per job not yet taken: idle helpers may not have
            // woken for the jobs queued before this one, and jobs may wait
            // for each other (two multiprocesses talking, say).
            if (r.io_jobs.size() > static_cast<std::size_t>(r.io_idle)) {
                r.io_pool.emplace_back([&r] { r.io_loop(); });
            }
        }
        r.io_cv.notify_one();
    }, &submit});
}

std::string deadlock_report() {
    Runtime& r = rt();
    Locked<SpinLock> hold(r.registry_lock);
    return r.last_report;
}

// ---- OS processes -------------------------------------------------------------

namespace {

// after_fork_in_child: the child has only the thread that forked, and copies
// of the parent's private state, some of it perhaps locked by threads it does
// not have. It keeps nothing of the parent's runtime: the next use of csp
// makes a new one (with its own inbox), as on first use in a program.
void after_fork_in_child() noexcept {
    g_in_child = true;
    reset_logger_after_fork();
    reset_stacks_after_fork();
    ::new (&g_free_parkers) FreeList;  // the parent's free parkers stay the parent's
    ::new (&g_free_tasks) FreeList;
    for (FreeList& pool : g_pools) ::new (&pool) FreeList;  // (perhaps locked by a parent's thread)
    trace_detail::enabled.store(false);  // the parent writes the trace file
    t_worker = nullptr;
    (void)t_thread.release();  // the parent's record of this thread
    g_runtime.store(nullptr);
    g_local_inbox = nullptr;
}

void flush_output() noexcept {
    // The child would otherwise write the parent's pending output again (or
    // lose its own: _exit does not flush).
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
}

}  // namespace

int run_os_process(const ForkHooks& hooks) noexcept {
    int status = -1;
    const std::function<void()> job = [&] {
        flush_output();
        const pid_t parent = getpid();
        const pid_t pid = fork();
        if (pid == 0) {
            // A child outlives nothing: if the parent is killed, so is it
            // (it could otherwise wait for the parent's processes for ever).
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);  // the parent died before that
            after_fork_in_child();
            hooks.child(hooks.arg);
            exit_os_process(0);
        }
        if (pid < 0) {
            hooks.parent(hooks.arg, -errno);
            return;
        }
        hooks.parent(hooks.arg, pid);
        int st = 0;
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                logger().error("waitpid({}) failed: {}", pid, std::strerror(errno));
                return;
            }
        }
        status = st;
    };
    run_io(job);
    return status;
}

void exit_os_process(int code) noexcept {
    flush_output();
    _exit(code);
}

bool in_child_os_process() noexcept { return g_in_child; }

}  // namespace csp::runtime
