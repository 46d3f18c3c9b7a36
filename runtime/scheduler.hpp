// scheduler.hpp: the records the runtime's files share (internal; not
// installed, not for the layers above, which see runtime.hpp only).
//
// Fiber states and where they live:
//   runnable  in exactly one place: a worker's `run_next`, `next_shared` or
//             `start_next` slot, its private list, or its shared queue (or
//             in a thief's hands between a steal's two locks: steal_into)
//   running   `Worker::current` of the worker running it
//   parked    nowhere: only whoever wins its selection word may ready() it
//
// Who owns what:
//   Task          a fiber process's private record (pools.cpp makes and frees
//                 it; park.cpp runs and parks it)
//   ThreadRecord  a plain thread's record (threads.cpp)
//   Worker        one worker thread: its run queues (below), its timers
//                 (timers.cpp) and its loop (worker.cpp); its fields are the
//                 owner's alone unless marked shared
//   Runtime       the workers, the live-process count, the registry
//                 (deadlock.cpp) and the io helpers (io.cpp); made on first
//                 use, one per OS process (a forked child makes its own)
//   Inbox         how another OS process wakes this one's fibers (in the arena)
#pragma once

#include "runtime/arena.hpp"
#include "runtime/context.hpp"
#include "runtime/runtime.hpp"
#include "runtime/shared_lock.hpp"
#include "runtime/spin_lock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace csp::runtime {

// Inbox: how fibers of one OS process are woken from another. A waker in
// another OS process pushes the parker on `head` (a lock-free stack: pushes
// only, and the owner takes the whole list at once, so no ABA) and rouses
// one of the owner's sleeping workers through its sleep word, a shared futex
// word in the arena. Workers take the list when they look for work.
// A child's inbox is made by its parent before the fork and never freed: a
// late waker may still ring its sleep words after the child has ended (a
// spurious wake-up, harmless). A child that ends cleanly leaves its free
// parkers in it, and the parent gives both to its next child (fork.cpp).
struct Inbox {
    std::atomic<Parker*> head{nullptr};
    std::atomic<std::uint32_t>* words = nullptr;  // the workers' sleep words
    std::uint32_t count = 0;
    std::uint32_t capacity = 0;  // of words (kept when the inbox is reused)
    void* spare_parkers = nullptr;  // a chain of free parker storage (FreeList::take_all)
    std::atomic<std::uint32_t> handed_back{0};  // 1: the child ended cleanly, spare_parkers is set
    HeapList heaps;  // the arena heaps the child allocates from (arena.hpp)
    // Parkers of this OS process whose waker died after it had won their
    // wait (rescue, park.cpp): pushed like `head` (linked by rescue_next),
    // finished by a worker as it drains the inbox (drain_inbox).
    std::atomic<Parker*> rescues{nullptr};
    // The OS process's pid, set when its runtime starts (for the trace: the
    // group of a partner's track).
    std::int32_t pid = 0;

    // For the deadlock detector across OS processes (across.cpp): every
    // inbox ever made is on one list (never taken off: inboxes are reused,
    // not freed); `live` while its OS process may run (from before the fork
    // until its parent has reaped it).
    Inbox* next_inbox = nullptr;
    std::atomic<std::uint32_t> live{0};
    // 0 while its OS process runs; else (crossings + 1) << 1 as read when it
    // last found itself quiet, | 1 once confirmed (its lines written).
    std::atomic<std::uint64_t> quiet{0};
    std::atomic<std::uint64_t> rung{0};  // the last note it was rung for
    // When confirmed: its report lines (names are private to each OS
    // process), its part of the explanation (AcrossPart) and its waits for
    // the breaker to end (parker, wait token), in the arena, under
    // lines_lock; and its name in the reports.
    struct Stopped {
        Parker* parker;
        std::uint64_t token;
    };
    SharedLock lines_lock;
    char* lines = nullptr;
    std::uint32_t lines_size = 0;
    std::uint32_t lines_capacity = 0;
    char* part = nullptr;
    std::uint32_t part_size = 0;
    std::uint32_t part_capacity = 0;
    Stopped* stopped = nullptr;
    std::uint32_t stopped_size = 0;
    std::uint32_t stopped_capacity = 0;
    char name[64]{};
    // For a view of the whole network at any time (parts_across): asks
    // counted, the last ask answered, and the part given (under lines_lock).
    std::atomic<std::uint64_t> asked{0};
    std::atomic<std::uint64_t> answered{0};
    char* shown = nullptr;
    std::uint32_t shown_size = 0;
    std::uint32_t shown_capacity = 0;
};

// ring rouses one sleeping worker of the OS process whose inbox `box` is.
void ring(Inbox* box) noexcept;

// Parker::state: Running / Parked, and Notified for a thread readied before
// it slept.
enum : std::uint32_t { kRunning = 0, kParked = 1, kNotified = 2 };

// A worker's sleep word: 0 awake, 1 asleep (or about to be), 2 roused from
// another OS process (which cannot take it off this process's idle count).
enum : std::uint32_t { kAwake = 0, kAsleep = 1, kRousedRemotely = 2 };

// An idle worker takes over what a busy worker cannot do while it runs one
// process that does not pause: its overdue timers (timers.cpp) and the
// process it woke last (take_over_woken), once that has lasted this long
// (ns). While another worker is busy, an idle one looks every kBusyLook.
inline constexpr std::int64_t kTakeOverGrace = 1'000'000;
inline constexpr std::int64_t kBusyLook = 5'000'000;
// A worker whose processes, since it last stole, met locks held by other
// workers often stops stealing for a while (Worker::may_steal): at first
// this long (ns), doubling to kStealPauseLongest while it goes on.
inline constexpr std::int64_t kStealPauseFirst = 100'000;
inline constexpr std::int64_t kStealPauseLongest = 3'200'000;

// can_deadlock: a wait of this kind only another process can end (of this
// OS process, or of another one, or another rank: the walk then asks them
// all).
inline bool can_deadlock(WaitKind k) noexcept {
    return k != WaitKind::Running && k != WaitKind::Timed;
}

// ProcessRecord: what the private records of fibers and threads share (a
// parker's `owner` points at one).
struct ProcessRecord {
    // The report of the deadlock that ended this process's last wait, set by
    // the deadlock breaker before it wakes the process (deadlock_report()).
    std::shared_ptr<const std::string> deadlock;
};

struct Timer {
    std::chrono::steady_clock::time_point deadline;
    Parker* parker;
    std::uint64_t token;
    bool operator>(const Timer& o) const noexcept { return deadline > o.deadline; }
};

// Task: the private record of a fiber process.
struct Task : ProcessRecord {
    Parker* parker = nullptr;
    Context context;
    std::unique_ptr<ProcessBody> body;
    Task* next = nullptr;  // run queue link
    // What finish_park must do once this fiber has switched away.
    Release release;
    bool timed = false;
    Timer timer{};
    std::atomic<int> home{0};  // the worker it last ran on: a hint, read by remote wakers
    std::uint64_t sim_id = 0;  // made n-th in a simulation (sim.cpp)
};

// ThreadRecord: the private record of a plain thread that uses csp.
struct ThreadRecord : ProcessRecord {
    Parker* parker = nullptr;
    std::string name;
    // (given: its name; "": "main" for the first thread, else "thread <id>".)
    explicit ThreadRecord(std::string_view given = {});
    ~ThreadRecord();
};

// The records behind a parker's `owner`, which new_parker stores as a
// ProcessRecord* (so the way back goes through it, whatever the layout).
inline ProcessRecord* record_of(const Parker* p) noexcept { return static_cast<ProcessRecord*>(p->owner); }
inline Task* task_of(const Parker* p) noexcept { return static_cast<Task*>(record_of(p)); }
inline ThreadRecord* thread_of(const Parker* p) noexcept { return static_cast<ThreadRecord*>(record_of(p)); }

// prefetch_stack: asks for the lines of t's stack that running it will touch
// first: from where it was suspended up (the switch pops its registers, then
// it returns through its frames), or, for a process that has not run yet,
// the top 1 KiB (its first frames; a page never touched yet is not fetched,
// and its first touch still faults). Called for the process a worker will
// probably run after the one it takes from a list now (run_next may come
// first, a thief may take it), so that the fetch overlaps that one's run.
// Why: when many processes wait their turn, their stacks have left the
// caches (100 000 waiting writers' top frames lie 132 KiB apart, a stack
// and its guard page, each a TLB and a cache miss), and resuming one walked
// its frames a miss at a time: bench/spawn's warm round on one worker went
// from about 1000 to 470 ns a process with this (the last phase, resuming
// and ending the writers, from 600 to 125 ns each). Nothing is prefetched
// for run_next, the process just woken here, whose stack is usually still
// in the cache (commstime); networks whose stacks all stay in the cache pay
// a few percent (BENCHMARKS.md, spawn).
inline void prefetch_stack(const Task* t) noexcept {
    const char* top = static_cast<const char*>(t->context.stack_bottom) + t->context.stack_size;
    const char* sp = static_cast<const char*>(static_cast<const void*>(t->context.fctx));
    if (!sp) sp = top - 1024;
    for (const char* a = sp; a < top && a < sp + 1024; a += 64) __builtin_prefetch(a, 1, 3);
}

struct Runtime;

struct Worker {
    int index = 0;
    Context scheduler;       // the worker thread's own stack
    // The process it runs (null: none). Written by the worker only; atomic
    // (relaxed: the same instructions) because a view of the network asks
    // whether a process is running now (running_now).
    std::atomic<Task*> current{nullptr};
    Task* run_next = nullptr;  // owner only: the process just woken here
    Task* start_next = nullptr;  // owner only: a fresh process a park chose, run by the loop (park_fiber)
    // Owner only: processes this worker woke that run_next displaced. No
    // atomics: nobody else can see them. They are moved to the shared queue
    // (publish) whenever another worker is idle, so they can be stolen.
    Task* local_head = nullptr;
    Task* local_tail = nullptr;
    std::int64_t local_count = 0;  // (so that publish need not walk the list under the queue's lock)
    unsigned picks = 0;   // owner only: to look at the shared queue first now and then
    unsigned streak = 0;  // owner only: run_next taken this many times in a row
    // `turns` counts the picks of this worker, written by it alone, for a
    // taker of next_shared (below) to see whether it has moved on. (On the
    // owner's line: others read it only while next_shared holds a process.)
    std::atomic<std::uint64_t> turns{0};
    // The groups below are what other workers read or write; each has a
    // cache line of its own, so that an idle worker polling them does not
    // take the busy owner's lines away from it at every pick (that false
    // sharing cost every process start and wake-up on two workers).
    //
    // Shared: run_next's place while another worker is idle, for a process
    // woken here: this worker runs it next, but an idle worker takes it
    // (take_over_woken) once this one has run the same process for
    // kTakeOverGrace (a process that computes without pausing would keep it
    // from running).
    alignas(64) std::atomic<Task*> next_shared{nullptr};
    // Shared: the queue, FIFO, with stealers and wakers on other threads.
    alignas(64) SpinLock queue_lock;
    Task* head = nullptr;
    Task* tail = nullptr;
    std::atomic<std::int64_t> queued{0};
    // Shared: the sleep word (kAwake/kAsleep/kRousedRemotely), in the arena
    // so that another OS process can rouse the worker (see Inbox).
    std::atomic<std::uint32_t>& sleeping;
    explicit Worker(std::atomic<std::uint32_t>& word) noexcept : sleeping(word) {}
    // Timers of the processes that parked on this worker, under timer_lock:
    // the owner fires them as it parks and looks for work, and an idle
    // worker takes over those overdue by kTimerGrace when the owner is busy
    // (a process that computes without parking would otherwise starve every
    // sleeper parked here). A timer whose wait ended otherwise stays until
    // it is due or swept. next_due publishes the earliest deadline (steady
    // clock, ns), kNoTimer when there is none.
    alignas(64) SpinLock timer_lock;
    // The end of this worker's pause in stealing (steady ns; 0: none;
    // written by the owner, read by rousers: wake_idle_worker).
    std::atomic<std::int64_t> steal_after{0};
    std::vector<Timer> timers;
    std::size_t sweep_at = 1024;  // sweep stale timers when the heap grows to this
    std::atomic<std::int64_t> next_due{kNoTimer};
    // When this worker, asleep, wakes by itself (ns; kNoTimer: never; 0:
    // awake): a timer added elsewhere that wants it sooner rouses it.
    std::atomic<std::int64_t> wakes_at{0};
    static constexpr std::int64_t kNoTimer = INT64_MAX;
    bool has_timers() const noexcept { return next_due.load(std::memory_order_relaxed) != kNoTimer; }
    std::thread thread;

    void push(Task* t) noexcept {
        t->next = nullptr;
        Locked<SpinLock> hold(queue_lock);
        if (tail) tail->next = t; else head = t;
        tail = t;
        queued.fetch_add(1, std::memory_order_seq_cst);
    }
    // pop / pop_local: the oldest of the queue / the private list, or null.
    // prefetch_next (a pick of the next process to run): prefetch_stack of
    // the one after it (read under the lock: only there is it still queued).
    Task* pop(bool prefetch_next = false) noexcept {
        if (queued.load(std::memory_order_relaxed) == 0) return nullptr;
        Locked<SpinLock> hold(queue_lock);
        Task* t = head;
        if (t) {
            head = t->next;
            if (!head) tail = nullptr;
            else if (prefetch_next) prefetch_stack(head);
            queued.fetch_sub(1, std::memory_order_relaxed);
        }
        return t;
    }
    // steal_into: for idle worker `thief`, the older half of this worker's
    // queue (at most kStealBatch): the first is returned, the rest go to the
    // thief's queue (shared, not private: should the thief then run a
    // process that computes for long, another worker can still take them;
    // find_work rouses one that sleeps). One steal per batch rather than per
    // process: the queue's line then crosses between the cores once per
    // batch, not once per process.
    static constexpr std::int64_t kStealBatch = 32;
    Task* steal_into(Worker* thief) noexcept {
        if (queued.load(std::memory_order_relaxed) == 0) return nullptr;
        Task* first;
        Task* last;
        std::int64_t taken = 0;  // besides the first
        {
            Locked<SpinLock> hold(queue_lock);
            first = head;
            if (!first) return nullptr;
            // (One while a simulation runs: the first worker is to choose
            // among them all. Read under the lock, which a push made since
            // the simulation began has held.)
            const std::int64_t want =
                simulating() ? 1 : std::min((queued.load(std::memory_order_relaxed) + 1) / 2, kStealBatch);
            last = first;
            while (taken < want - 1 && last->next) {
                last = last->next;
                ++taken;
            }
            head = last->next;
            if (!head) tail = nullptr;
            queued.fetch_sub(taken + 1, std::memory_order_relaxed);
        }
        Task* rest = first->next;
        first->next = nullptr;
        if (taken > 0) {
            last->next = nullptr;
            Locked<SpinLock> hold(thief->queue_lock);
            if (thief->tail) thief->tail->next = rest; else thief->head = rest;
            thief->tail = last;
            thief->queued.fetch_add(taken, std::memory_order_seq_cst);
        }
        return first;
    }
    void push_local(Task* t) noexcept {
        t->next = nullptr;
        if (local_tail) local_tail->next = t; else local_head = t;
        local_tail = t;
        ++local_count;
    }
    Task* pop_local(bool prefetch_next = false) noexcept {
        Task* t = local_head;
        if (t) {
            local_head = t->next;
            --local_count;
            if (!local_head) local_tail = nullptr;
            else if (prefetch_next) prefetch_stack(local_head);
        }
        return t;
    }
    // has_runnable (owner only): a process waits to run here (run_next, the
    // private list, the shared slot or the queue).
    bool has_runnable() const noexcept {
        return run_next || local_head || next_shared.load(std::memory_order_relaxed) ||
               queued.load(std::memory_order_acquire) != 0;
    }
    // publish moves the private list to the shared queue, where idle workers
    // can steal from it.
    void publish() noexcept {
        if (!local_head) return;
        Locked<SpinLock> hold(queue_lock);
        if (tail) tail->next = local_head; else head = local_head;
        tail = local_tail;
        local_head = local_tail = nullptr;
        queued.fetch_add(std::exchange(local_count, 0), std::memory_order_seq_cst);
    }
    // rouse wakes the worker if it sleeps; true when it did. The rouser
    // takes it off the idle count at once (see the deadlock accounting).
    bool rouse() noexcept;
    // drain_inbox takes the fibers woken from other OS processes.
    bool drain_inbox() noexcept;
    void loop() noexcept;
    Task* find_work() noexcept;
    Task* serve_ranks(Runtime& r) noexcept;  // (worker.cpp)
    void stop_serving_ranks() noexcept;
    bool (*rank_server)(RankServe) noexcept = nullptr;  // the hook it began serving with (not ended)
    // Timers (timers.cpp): fire the due ones; add one (kept off the park
    // path); fire other workers' overdue ones (an idle worker); sleep until
    // a timer here, or one overdue elsewhere, wants this worker.
    bool fire_timers() noexcept;
    [[gnu::noinline]] void add_timer(const Timer& t) noexcept;
    bool take_over_timers() noexcept;
    void sleep_idle() noexcept;
    // take_over_woken: an idle worker takes the next_shared of a worker that
    // has run one process since this one last looked, kTakeOverGrace ago.
    bool take_over_woken() noexcept;
    // What this worker saw of each other's `turns`, and when (steady ns).
    std::vector<std::pair<std::uint64_t, std::int64_t>> seen_turns;
    // Owner only. contended: a process of this worker found a lock of
    // shared state (a channel's, a barrier's) held by another worker of this
    // OS process, this many times (SharedLock::lock_slow). Processes that
    // communicate through one channel all the time run best together on one
    // worker: spread over two, each message takes the channel's lines from
    // the other core (bench/buffered on two workers: 66 ns a message
    // against 23 with all its processes on one). Such a process moves to
    // the holder's worker (note_contended_by), and a worker whose processes
    // keep meeting locks held elsewhere since it last stole stops stealing
    // for a while (may_steal), or it would take them back. The pause is the
    // worker's: it steals nothing meanwhile, though timers and processes
    // kept from running elsewhere are still taken over (take_over_*), and
    // wake_idle_worker rouses a worker that may steal first. Processes that
    // compute and seldom communicate seldom meet a lock held, and are
    // stolen as before.
    std::uint64_t contended = 0;
    std::uint64_t contended_at_steal = 0;
    std::uint64_t turns_at_steal = 0;
    std::int64_t steal_pause = kStealPauseFirst;
    Worker* moving_to = nullptr;  // owner only: where a moving fiber goes (move_to_worker)
    bool may_steal() noexcept;
};

// Registry: every live parker of this OS process (fiber processes, threads
// that use csp) and the OS threads that may use csp, for the deadlock
// detector (deadlock.cpp). One lock guards all of it.
class Registry {
public:
    // add: may throw std::bad_alloc (then nothing was added).
    void add(Parker* const* p, std::size_t n);
    void add(Parker* p) { add(&p, 1); }
    void remove(Parker* p) noexcept;
    // with_all: see(every registered parker) under the lock (with_registered).
    void with_all(void (*see)(const std::vector<Parker*>&, void*), void* ctx);
    // note_thread: the calling thread starts (true) or stops (false) using
    // csp. One that stops is exiting, or is main running static destructors:
    // it will not wake anybody any more, so it counts as an older thread.
    void note_thread(bool known);
    // note_older_threads: the OS threads there when libcsp was loaded (but
    // the loading one) are taken as not using csp (a sanitizer's background
    // thread, say).
    void note_older_threads();
    // note_foreign_threads: the OS threads there now that are not known to
    // use csp are taken as not using it (a library's, started before).
    void note_foreign_threads();
    // break_deadlock: the walk, when the process looked quiet (see
    // deadlock.cpp); wakes every blocked process with kDeadlocked when it is
    // a deadlock.
    void break_deadlock(std::uint64_t thread_wakes_seen) noexcept;
    // quiet_for_ranks: whether every process waits in a Blocked, Join or Rank
    // wait (at least one Rank wait), and their report lines if `lines` is
    // not null (lock taken: see rank_quiet_now for when lines may be read).
    bool quiet_for_ranks(std::string* lines);
    // break_for_ranks: end every Blocked and Rank wait with kDeadlocked.
    void break_for_ranks(std::shared_ptr<const std::string> report) noexcept;

private:
    enum class Look { Busy, Nobody, Deadlocked, QuietForRanks, QuietAcross };
    // look: the walk (lock_ held): the parkers of a local deadlock in
    // *blocked. It reads states only: what a parker waits on may be gone
    // the moment after (woken, its channel freed and the memory reused), so
    // names are read by lines() once the moment is known to be still.
    Look look(std::vector<Parker*>* blocked) const;
    // lines: the report's lines, a line per process (lock_ held, and every
    // process known to be parked and unable to be woken meanwhile).
    std::string lines(const char* indent = "  ") const;
    // explained: the layers' explanation of the deadlock (see
    // set_deadlock_explainer), or nothing; under the same conditions.
    std::string explained() const;
    // registered: the parkers in the registry now (lock_ held).
    std::vector<Parker*> registered() const;
    // wake_deadlocked: false when a completer lock was held (and !proven).
    bool wake_deadlocked(const std::vector<Parker*>& blocked, std::shared_ptr<const std::string> report,
                         bool proven) noexcept;

    SpinLock lock_;
    // Slots (null: free) rather than a list, so that one leaving touches its
    // own slot and not its neighbours, which a million processes scatter
    // over memory. free_ can hold every slot: remove never allocates.
    std::vector<Parker*> slots_;
    std::vector<std::uint32_t> free_;
    std::set<int> known_threads_;  // tids: workers, io helpers, registered threads
    std::set<int> older_threads_;  // tids taken as not using csp
};

// IoPool: the helper threads of csp::io (io.cpp).
struct IoPool {
    struct Job {
        const std::function<void()>* call;
        Parker* parker;
        std::uint64_t token;
        bool counted = false;  // run_os_job's: its helper counts as running
    };
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Job> jobs;
    int idle = 0;  // helper threads waiting for a job
    std::vector<std::thread> threads;
    bool stop = false;

    // submit queues a job, starting a helper when none is free for it.
    void submit(const Job& job);
    // stop_all ends the helpers (at exit, once no process runs).
    void stop_all() noexcept;

private:
    void loop() noexcept;
};

struct Runtime {
    Inbox* inbox = nullptr;
    std::vector<std::unique_ptr<Worker>> workers;
    std::atomic<std::int64_t> running_threads{0};  // registered, not in a Blocked/Join park
    std::atomic<std::int64_t> live{0};             // fiber processes not yet ended
    // Processes waiting for another MPI rank (counted by libcsp-mpi): while
    // there are some, idle workers stay awake a while and serve the ranks'
    // messages themselves (Worker::loop, set_rank_serve_hook).
    std::atomic<int> rank_waits{0};
    std::atomic<bool (*)(RankServe) noexcept> serve_ranks{nullptr};
    std::atomic<std::uint32_t> live_zero{1};       // futex word: 1 when live == 0
    std::atomic<int> idle{0};
    std::atomic<bool> stopping{false};
    std::atomic<unsigned> next_worker{0};
    Registry registry;
    IoPool io;
    // Held while the inbox is drained and rescues are finished, so that a
    // rescue never takes a parker that another worker has drained but not
    // yet marked running (worker.cpp).
    SpinLock inbox_lock;
    // thread_wakes counts threads returning from a Blocked or Join park: the
    // registry walk is not one atomic look, so a thread that wakes and parks
    // again (perhaps waking fibers meanwhile) while it runs must void it.
    std::atomic<std::uint64_t> thread_wakes{0};

    Runtime();
    ~Runtime();
    // wake_idle_worker rouses one sleeping worker, if any (not `except`:
    // one looking for work on its way to sleep, which would rouse itself).
    void wake_idle_worker(const Worker* except = nullptr) noexcept;
    // check_quiet is the cheap filter before the registry walk.
    void check_quiet() noexcept {
        const std::uint64_t wakes = thread_wakes.load(std::memory_order_seq_cst);
        if (running_threads.load(std::memory_order_seq_cst) == 0 &&
            idle.load(std::memory_order_seq_cst) == static_cast<int>(workers.size())) {
            registry.break_deadlock(wakes);
        }
    }
};

// initial-exec: libcsp is linked at start-up, so its thread-locals sit in the
// static TLS block and need no __tls_get_addr call on the hot path; constinit:
// no dynamic initialisation, so no TLS wrapper call in the files that use it.
extern constinit __attribute__((tls_model("initial-exec"))) thread_local Worker* t_worker;

// True in a child made by run_os_process.
extern bool g_in_child;
// In a child, the inbox its parent made for it (its runtime takes it).
extern Inbox* g_given_inbox;

// rt(): the runtime, made on first use (worker.cpp).
Runtime& rt();

// started(): the runtime, for paths that can only run once it exists (a
// worker is running, or a parker exists): no initialisation guard on the hot
// path. Published by rt() once fully made.
// (Hidden: libcsp's own, as g_plain_home in runtime.hpp.)
extern std::atomic<Runtime*> g_runtime __attribute__((visibility("hidden")));
inline Runtime& started() noexcept { return *g_runtime.load(std::memory_order_relaxed); }

// Read the worker through a call the compiler cannot fold: after a context
// switch the same fiber may be running on another thread, and a thread-local
// address cached across the switch would be the old thread's.
__attribute__((noinline)) Worker* this_worker() noexcept;

// pools.cpp
Parker* new_parker(ProcessRecord* owner, bool is_thread);
void release_parker(Parker* p) noexcept;  // drops one reference
Task* new_task();
void free_task(Task* t) noexcept;     // the task is destroyed, its storage pooled
void discard_task(Task* t) noexcept;  // a task whose fiber never ran, stack and all
void reset_pools_after_fork() noexcept;
// take_free_parkers empties the parker pool, as a chain (a child ending);
// adopt_free_parkers adds such a chain to it (the next child, starting).
void* take_free_parkers() noexcept;
void adopt_free_parkers(void* chain) noexcept;

// park.cpp
std::uint32_t park_fiber(Parker* p, WaitKind kind, const WaitReason* reason, Release release) noexcept;
void run_task(Worker* w, Task* t) noexcept;
// io.cpp: run_os_job's helper waits for its child (true), or has seen it end.
void os_job_waiting(bool waiting) noexcept;
Task* next_local(Worker* w) noexcept;
Context* task_entry(void* arg) noexcept;

// sim.cpp: while a simulation runs, the next process to run, as a decision
// chooses among all that can (pick_next); and the virtual time moved to
// the first worker's next timer, which fire (false: it has none).
Task* sim_pick(Worker* w) noexcept;
bool sim_advance(Worker& w) noexcept;
std::uint64_t sim_next_id() noexcept;  // (make_task's, while simulating)
// sim_hand_to_first: runnable t, found by a worker other than the first
// while simulating, to the first (which runs every process then).
void sim_hand_to_first(Task* t) noexcept;

// threads.cpp
ThreadRecord& this_thread_record();
// known_thread_parker: the calling thread's parker if it has a record (null
// otherwise: none is made).
Parker* known_thread_parker() noexcept;
// forget_this_thread: the calling thread is no csp process any more (its
// record, if it has one, goes, as when a thread ends): an io helper after
// a job that used channels, back in its pool, which would otherwise count
// as a running process for as long as it lives (and no deadlock would be
// found again).
void forget_this_thread() noexcept;
std::uint32_t park_thread(Parker* p, WaitKind kind, const WaitReason* reason, std::int64_t timeout_ns,
                          std::uint64_t token, Release release) noexcept;
// A thread (or guest) parked in a wait that can deadlock stops counting as
// running (the detector may look now), and counts again once it is woken.
void stop_counting_as_running() noexcept;
void count_as_running_again() noexcept;
void forget_thread_record_after_fork() noexcept;
void release_thread_parker_at_exit() noexcept;

// guests.cpp (runtime.hpp's GuestHost). t_guest_parker: the parker of the
// guest the calling thread runs now (null on the host's own stack).
extern constinit __attribute__((tls_model("initial-exec"))) thread_local Parker* t_guest_parker;
// park_guest: park_thread for a guest (park_thread hands it over).
std::uint32_t park_guest(Parker* p, WaitKind kind, const WaitReason* reason, std::int64_t timeout_ns,
                         std::uint64_t token, Release release) noexcept;
// guest_yield: the running guest lets its host run the others first.
void guest_yield(Parker* p) noexcept;
// to_guest_host: guest p, readied (its state Notified, its wait won), to its
// host's queue. From any thread of p's OS process.
void to_guest_host(Parker* p) noexcept;

// deadlock.cpp
int this_tid() noexcept;  // (name_of: runtime.hpp)

// across.cpp: deadlocks across OS processes. `crossings` counts the wake-ups
// that cross from one OS process to another (a waker bumps it once its
// wake-up is visible: crossed()); every OS process notes in its inbox the
// count it saw as it last found itself quiet (every process in a Blocked,
// Join, Remote or OsJoin wait, its inbox empty, nobody running); when every
// live inbox holds the same count, and the count has not moved, nobody
// anywhere can wake anybody (see across.cpp for why).
void across_start(Runtime& r);            // a runtime starts (the first makes the shared record)
void across_adopt(Inbox* box, bool made);  // a child's inbox, before its fork
void across_reaped(Inbox* box) noexcept;   // its child has ended: no longer live
std::uint64_t crossings_now() noexcept;
void crossed() noexcept;
void left_quiet() noexcept;  // this OS process runs again (cheap when it was not quiet)
// note_quiet: this OS process is quiet, having read `seen` crossings before
// it looked: noted in its inbox. True when every other live inbox is quiet
// at `seen` too (those quiet at an older count are rung, to look again).
bool note_quiet(Inbox* box, std::uint64_t seen) noexcept;
// confirm_quiet: the same, confirmed with its report lines and the waits
// a breaker is to end; then, if every live inbox is confirmed at `seen` and
// the count has not moved, the deadlock is broken: every OS process's
// waits end with kDeadlocked (true; false: not yet, and the unconfirmed are
// rung).
bool confirm_quiet(Inbox* box, std::uint64_t seen, const std::string& lines, const std::string& part,
                   const std::vector<Inbox::Stopped>& stopped) noexcept;
// across_part: this OS process's part of the explanation (AcrossPart), or
// nothing; under the registry's lock, as Registry::explained.
std::string across_part(const std::vector<Parker*>& parked);
// across_report: the report of the last deadlock across OS processes.
std::string across_report();
// answer_asked: another OS process asked for this one's part of a view of
// the network (parts_across): given, from an idle worker (cheap when none
// asked).
void answer_asked() noexcept;

}  // namespace csp::runtime
