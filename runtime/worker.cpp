// worker.cpp: the worker threads and the runtime's life.
//
// Owns: the Runtime (made on first use, stopped by a static destructor at
// exit), each Worker's loop (find work, spin a little, sleep on its futex
// word), stealing from other workers, draining the inbox of fibers woken
// from other OS processes, and rousing idle workers. Must hold: a worker on
// the idle count sleeps or is about to (its word kAsleep) until a rouser
// takes it off the count; the runtime is published (g_runtime) only once
// fully made.
#include "runtime/scheduler.hpp"

#include "runtime/arena.hpp"
#include "runtime/futex.hpp"
#include "runtime/log.hpp"

#include <algorithm>
#include <cstdlib>
#include <sched.h>
#include <unistd.h>

namespace csp::runtime {

constexpr auto kRemoteStayAwake = std::chrono::milliseconds(2);

constinit __attribute__((tls_model("initial-exec"))) thread_local Worker* t_worker = nullptr;
Inbox* g_local_inbox = nullptr;
Inbox* local_inbox() noexcept { return g_local_inbox; }
std::atomic<Runtime*> g_runtime{nullptr};

namespace {

// available_cores: the cores this OS process may run on: its CPU affinity
// (taskset, a cpuset, or the launcher of an MPI job: Open MPI's mpirun binds
// each rank to one core for 2 ranks or fewer, to a socket beyond), else
// every core. (Two workers of a rank bound to one core took turns on it:
// bench/mpi's one-way latency under a plain `mpirun -np 2` went from
// 1042-1397 ns with two workers a rank to 776-812 with one.)
int available_cores() noexcept {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        if (const int n = CPU_COUNT(&set); n > 0) return n;
    }
    return static_cast<int>(std::thread::hardware_concurrency());
}

int configured_threads() noexcept {
    int n = available_cores();
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

}  // namespace

Runtime::Runtime() {
    const int n = configured_threads();
    // A child's inbox was made by its parent (fork.cpp); it may have served
    // an earlier child, whose sleep words it keeps if they are enough.
    inbox = g_given_inbox ? g_given_inbox : arena_new<Inbox>();
    if (inbox->capacity < static_cast<std::uint32_t>(n)) {
        inbox->words = static_cast<std::atomic<std::uint32_t>*>(
            arena_allocate(sizeof(std::atomic<std::uint32_t>) * static_cast<std::size_t>(n)));
        inbox->capacity = static_cast<std::uint32_t>(n);
    }
    inbox->count = static_cast<std::uint32_t>(n);
    inbox->pid = static_cast<std::int32_t>(getpid());
    g_local_inbox = inbox;
    refresh_plain_home();
    across_start(*this);
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
    registry.note_older_threads();

    logger().debug("runtime started with {} worker threads", n);
}

namespace {
std::atomic<void (*)() noexcept> g_exit_hook{nullptr};
}

void set_exit_hook(void (*hook)() noexcept) noexcept { g_exit_hook.store(hook, std::memory_order_release); }

namespace {
std::atomic<bool> g_ending{false};
}

bool ending() noexcept { return g_ending.load(std::memory_order_acquire); }

Runtime::~Runtime() {
    g_ending.store(true, std::memory_order_release);
    // main's scope of the runtime ends: join the processes still running
    // (spawned ones), then stop the workers.
    if (t_worker) {
        // exit() called from inside a process: nothing can be joined from here.
        for (auto& w : workers) w->thread.detach();
        return;
    }
    if (auto* hook = g_exit_hook.load(std::memory_order_acquire)) hook();
    while (live.load(std::memory_order_acquire) != 0) futex_wait(live_zero, 0);
    stopping.store(true);
    for (auto& w : workers) {
        w->sleeping.store(0);
        futex_wake(w->sleeping, 1);
    }
    for (auto& w : workers) w->thread.join();
    io.stop_all();
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

void Runtime::wake_idle_worker(const Worker* except) noexcept {
    if (idle.load(std::memory_order_seq_cst) == 0) return;
    // (First one that may steal: one that pauses its stealing, roused, would
    // leave the work where it is: Worker::may_steal.)
    for (auto& w : workers) {
        if (w.get() != except && w->steal_after.load(std::memory_order_relaxed) == 0 && w->rouse()) return;
    }
    for (auto& w : workers) {
        if (w.get() != except && w->rouse()) return;
    }
}


bool Worker::rouse() noexcept {
    std::uint32_t one = kAsleep;
    if (!sleeping.compare_exchange_strong(one, kAwake, std::memory_order_seq_cst)) return false;
    started().idle.fetch_sub(1, std::memory_order_seq_cst);
    futex_wake(sleeping, 1);
    return true;
}

namespace {

// finish_rescue: parker p of this OS process, whose waker died after it had
// won p's wait (see rescue in park.cpp), with the inbox drained and the
// inbox lock held. Whatever that waker did before it died is visible now:
// had it readied a fiber, the fiber was in the inbox (and is marked running
// now) or has run since (and begun another wait: every park begins one). So
// a fiber still parked in that wait was never readied: it ends with the
// rescue's outcome and runs. A thread that its waker did not notify takes
// the rescue's outcome and wakes itself (park_thread looks for kRescueDone);
// one that has already woken has read its outcome (the value delivered).
void finish_rescue(Worker* w, Parker* p) noexcept {
    const std::uint64_t rescue = p->rescue.load(std::memory_order_acquire);
    const std::uint64_t token = rescue >> 32;
    std::uint64_t word = p->selection.load(std::memory_order_acquire);
    if ((word >> 32) != token) return;
    const std::uint64_t ended = waiting_word(token) | (rescue & 0x7FFFFFFFu);
    if (p->is_thread) {
        if (p->state.load(std::memory_order_acquire) == kNotified) return;  // its waker did
        p->selection.compare_exchange_strong(word, ended, std::memory_order_acq_rel);
        p->rescue.store(rescue | Parker::kRescueDone, std::memory_order_release);
        if (p->is_guest) {
            // A guest parked in that wait is readied here; one not parked
            // yet finds the flag as it parks (park_guest); one that has run
            // on since (handed over by the inbox) is left alone.
            std::uint32_t parked = kParked;
            if (p->state.compare_exchange_strong(parked, kNotified, std::memory_order_acq_rel)) to_guest_host(p);
            return;
        }
        futex_wake(p->state, 1);  // (a nudge: park_thread also looks now and then)
        return;
    }
    if (p->state.load(std::memory_order_acquire) != kParked) return;
    // (A CAS: should it have been readied after all, and parked again in a
    // later wait, the word is that wait's and stays.)
    if (!p->selection.compare_exchange_strong(word, ended, std::memory_order_acq_rel)) return;
    p->state.store(kRunning, std::memory_order_relaxed);
    w->push_local(task_of(p));
}

}  // namespace

bool Worker::drain_inbox() noexcept {
    Runtime& r = started();
    Inbox* box = r.inbox;
    if (!box->head.load(std::memory_order_relaxed) && !box->rescues.load(std::memory_order_relaxed)) {
        return false;
    }
    {
        Locked<SpinLock> hold(r.inbox_lock);
        // The rescues first, then the inbox (see finish_rescue).
        Parker* rescued = box->rescues.exchange(nullptr, std::memory_order_seq_cst);
        Parker* p = box->head.exchange(nullptr, std::memory_order_seq_cst);
        // Something runs again here, roused from outside: a walk of the
        // deadlock detector under way meanwhile must not count (the rouser
        // left the idle count alone), nor a note of quiet stand.
        r.thread_wakes.fetch_add(1, std::memory_order_seq_cst);
        left_quiet();
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
            if (p->is_guest) {  // (readied from another OS process: as ready() does here)
                if (p->state.exchange(kNotified, std::memory_order_acq_rel) == kParked) to_guest_host(p);
                p = next;
                continue;
            }
            p->state.store(kRunning, std::memory_order_relaxed);
            push_local(task_of(p));
            p = next;
        }
        while (rescued) {
            Parker* next = rescued->rescue_next;
            finish_rescue(this, rescued);
            rescued = next;
        }
    }
    if (r.idle.load(std::memory_order_relaxed) > 0) {
        publish();
        r.wake_idle_worker();
    }
    return true;
}

Task* Worker::find_work() noexcept {
    if (simulating() && index != 0) [[unlikely]] return nullptr;  // (the first runs them all: sim.cpp)
    if (has_timers()) fire_timers();
    drain_inbox();
    if (Task* t = next_local(this)) return t;
    // Steal from the others, starting after ourselves.
    Runtime& r = rt();
    const std::size_t n = r.workers.size();
    for (std::size_t i = (n > 1 && !simulating() && !may_steal()) ? n : 1; i < n; ++i) {
        Worker* victim = r.workers[(static_cast<std::size_t>(index) + i) % n].get();
        if (Task* t = simulating() ? victim->pop() : victim->steal_into(this)) {
            // (A simulation began since this worker looked: the first runs it.)
            if (simulating() && index != 0) [[unlikely]] {
                sim_hand_to_first(t);
                return nullptr;
            }
            // The rest of the batch waits in this worker's queue: a worker
            // asleep meanwhile (the victim, say, which found nothing while
            // the batch was in flight) is to be able to take it, should this
            // one now run a process that computes for long.
            if (queued.load(std::memory_order_relaxed) > 0) r.wake_idle_worker(this);
            contended_at_steal = contended;
            turns_at_steal = turns.load(std::memory_order_relaxed);
            return t;
        }
    }
    // Nothing to run: fire the overdue timers of a worker that is busy, or
    // take a process woken there.
    if (n > 1 && (take_over_timers() || take_over_woken())) return next_local(this);
    return nullptr;
}

bool Worker::may_steal() noexcept {
    const std::int64_t after = steal_after.load(std::memory_order_relaxed);
    const std::uint64_t met = contended - contended_at_steal;
    const std::uint64_t picks = turns.load(std::memory_order_relaxed) - turns_at_steal;
    if (after == 0) {
        // Since the last steal: a lock held by another worker met at one
        // pick in four or more (and 8 times at least) pauses stealing; a
        // long stretch calmer than that (256 picks: the processes of a
        // steal run on, well past the first few) brings the pause back to
        // its first length.
        if (met < 8 || met * 4 < picks) {
            if (picks >= 256 && met * 4 < picks) steal_pause = kStealPauseFirst;
            return true;
        }
    }
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    if (after != 0) {
        if (now < after) return false;
        steal_after.store(0, std::memory_order_relaxed);
        contended_at_steal = contended;
        turns_at_steal = turns.load(std::memory_order_relaxed);
        return true;
    }
    steal_after.store(now + steal_pause, std::memory_order_relaxed);
    steal_pause = std::min(2 * steal_pause, kStealPauseLongest);
    return false;
}

bool Worker::take_over_woken() noexcept {
    Runtime& r = started();
    const std::size_t n = r.workers.size();
    if (seen_turns.size() != n) seen_turns.assign(n, {0, 0});
    std::int64_t now = 0;
    for (std::size_t i = 0; i < n; ++i) {
        Worker* other = r.workers[i].get();
        if (other == this || !other->next_shared.load(std::memory_order_relaxed)) continue;
        if (now == 0) now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now().time_since_epoch()).count();
        const std::uint64_t turns = other->turns.load(std::memory_order_relaxed);
        auto& [seen, at] = seen_turns[i];
        if (seen != turns || at == 0) {
            seen = turns;  // it has moved on since: look again later
            at = now;
            continue;
        }
        if (now - at < kTakeOverGrace) continue;
        if (Task* t = other->next_shared.exchange(nullptr, std::memory_order_acquire)) {
            push_local(t);
            return true;
        }
    }
    return false;
}

// serve_ranks: a process waits for another MPI rank, whose answer comes
// through the communication thread: stay awake a while, and do that
// thread's work here (libcsp-mpi's hook, in turn with the thread, which
// sleeps meanwhile: mpi/comm.cpp). Waking a sleeping worker takes tens of
// microseconds on a virtual machine, and handing each message between two
// threads that share a core (mpirun binds a rank to one) a context switch
// or two: bench/mpi's one-way latency went from 37 us (the thread spinning
// on pause, then yielding), to 10 (yielding at once), to 5 (serving here in
// turn with it) and 1.5 (serving here while it sleeps). Yield now and then
// all the same: ranks may outnumber cores. A worker that finds a process
// to run stays counted as serving (the thread keeps sleeping, but for a
// look now and then): it comes back when that process waits again.
Task* Worker::serve_ranks(Runtime& r) noexcept {
    constexpr unsigned kRoundsPerYield = 32;
    auto* serve = r.serve_ranks.load(std::memory_order_acquire);
    if (!serve) {
        stop_serving_ranks();
        return nullptr;
    }
    if (rank_server != serve) {
        stop_serving_ranks();
        rank_server = serve;
        serve(RankServe::Begin);
    }
    // (The stay is timed from the first look at the clock, kRoundsPerYield
    // rounds in: a process that waits for another rank usually has its
    // answer sooner, and a clock read on every entry was some 20 ns of each
    // hop of bench/mpi's ping-pong.)
    std::chrono::steady_clock::time_point until{};
    for (unsigned round = 1;; ++round) {
        const bool served = serve(RankServe::Round);
        // (What the round woke beyond the next to run here went to this
        // worker's private list: share it, or the other workers, serving or
        // asleep, would not run it until this one parks again.)
        if (served && local_head) {
            publish();
            if (r.idle.load(std::memory_order_seq_cst) > 0) r.wake_idle_worker();
        }
        if (Task* found = find_work()) return found;
        // (Not for longer than the stay even while messages come: then this
        // worker sleeps, and its runtime may look for a deadlock.)
        if (round % kRoundsPerYield == 0) {
            const auto now = std::chrono::steady_clock::now();
            if (round == kRoundsPerYield) until = now + kRemoteStayAwake;
            else if (now >= until) break;
            if (!served) sched_yield();
        }
        if (served) continue;
        if (r.rank_waits.load(std::memory_order_relaxed) == 0) break;
        __builtin_ia32_pause();
    }
    stop_serving_ranks();
    return nullptr;
}

void Worker::stop_serving_ranks() noexcept {
    if (auto* serve = std::exchange(rank_server, nullptr)) serve(RankServe::End);
}

void set_rank_serve_hook(bool (*hook)(RankServe step) noexcept) noexcept {
    rt().serve_ranks.store(hook, std::memory_order_release);
}

void Worker::loop() noexcept {
    t_worker = this;
    SharedLock::note_worker_thread(index);
    Runtime& r = rt();
    r.registry.note_thread(true);
    init_thread_context(scheduler);
    install_overflow_handler();
    for (;;) {
        if (Task* t = start_next) {
            start_next = nullptr;
            run_task(this, t);
            continue;
        }
        if (Task* t = find_work()) {
            run_task(this, t);
            continue;
        }
        // (Simulated: nothing can run, so the virtual time moves to the next timer.)
        if (simulating() && index == 0 && sim_advance(*this)) [[unlikely]] continue;
        if (r.stopping.load(std::memory_order_acquire)) {
            stop_serving_ranks();
            break;
        }
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
        if (r.rank_waits.load(std::memory_order_relaxed) > 0) {
            found = serve_ranks(r);
        } else {
            stop_serving_ranks();  // (if it served before the last process ran: nobody serves now)
            for (int i = 0; i < 16 && !found; ++i) {
                for (int j = 0; j < 8; ++j) __builtin_ia32_pause();
                found = find_work();
            }
            for (int i = 0; i < 64 && !found; ++i) {
                sched_yield();
                found = find_work();
            }
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
            answer_asked();       // (another OS process drawing the network)
            found = find_work();  // the detector may have woken processes here
        }
        if (!found && !r.stopping.load()) {
            sleep_idle();
        }
        // Off the idle count, unless a rouser of this OS process has already
        // taken us off it (it leaves kAwake; one from another leaves 2).
        if (sleeping.exchange(kAwake, std::memory_order_seq_cst) != kAwake) {
            r.idle.fetch_sub(1, std::memory_order_seq_cst);
        }
        if (found) run_task(this, found);
    }
}

}  // namespace csp::runtime
