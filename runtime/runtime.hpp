// runtime.hpp: what the runtime offers the layers above it.
//
// The runtime runs processes (fibers on worker threads; plain threads such as
// main take part as they are) and knows nothing about channels. Its verbs:
//
//   begin_wait(p)        start a new wait of process p: a fresh epoch of its
//                        selection word, outcome "waiting".
//   try_complete(p,t,o)  whoever ends a wait wins the selection word with a
//                        compare-and-swap from (epoch t, waiting) to (t, o).
//                        Only the winner may then call ready(p).
//   park(p, kind, reason, release)
//                        suspend the calling process until ready(p); `reason`
//                        says what it waits on, in the caller's words (for
//                        deadlock reports);
//                        `release` runs once the caller is fully suspended.
//   ready(p)             make p runnable again, from any thread.
//
// A plain channel read is thus a wait with one waiter record; an alternation
// is a wait with several records all pointing at the same selection word.
//
// The park rule: a waker may only win a wait it can see through something the
// parking process releases in `release` (for a channel wait, the lock of the
// channel its waiter is queued on), or through something the runtime arms
// after the switch (timers, io jobs). So by the time anyone can ready a fiber
// it has fully switched away, and ready() needs no handshake with it: the
// parker holds its lock across its switch, as Go's gopark holds the channel
// lock until its unlock function runs on the scheduler.
//
// The files of the runtime (docs/internals.md has the map): worker.cpp
// (worker threads, run queues, the loop), park.cpp (park and ready),
// threads.cpp (plain threads), processes.cpp (starting and joining),
// timers.cpp, io.cpp, fork.cpp, pools.cpp, deadlock.cpp; scheduler.hpp holds
// the records they share. context.cpp is the fiber switch, arena.cpp the
// shared arena.
#pragma once

#include "runtime/shared_lock.hpp"
#include "runtime/spin_lock.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace csp::runtime {

// Outcomes of a wait: the low 32 bits of a selection word. The layers above
// use small numbers (guard positions, channel outcomes); the runtime keeps the
// top of the range for its own wakers.
inline constexpr std::uint32_t kWaiting = 0;
// (kReserved: held by one waker that ends the wait later, with the outcome
// it then stores, and readies it: nobody else can win it meanwhile. For a
// choice across MPI ranks, whose home reserves it: channels/remote.hpp.)
inline constexpr std::uint32_t kInterrupted = 0xFFFFFFFBu;  // Join::interrupt
inline constexpr std::uint32_t kReserved = 0xFFFFFFFCu;
inline constexpr std::uint32_t kWoken = 0xFFFFFFFDu;       // join or io finished
inline constexpr std::uint32_t kTimedOut = 0xFFFFFFFEu;    // a deadline passed
inline constexpr std::uint32_t kDeadlocked = 0xFFFFFFFFu;  // the deadlock breaker

// What a parked process waits for. Blocked and Join waits can take part in a
// deadlock (only another process of this OS process can end them); Timed
// waits (sleep, timeout, io) end by themselves. Remote waits (on an object
// shared with another OS process) may be ended from there: a deadlock with
// them is a matter for every OS process of the network, which the detector
// looks at through the arena (across.cpp). Rank waits are ended by another
// MPI rank: a deadlock with them is a matter for every rank
// (set_rank_quiet_hook). The deadlock breaker ends Blocked, Remote and Rank
// waits only: a Join ends when the processes it waits for have unwound.
// (RankJoin: waits for a process on another MPI rank to end, for its result.
// Like Join it is never ended by the deadlock breaker: that process ends,
// broken or not, and its result or failure comes; like Rank it makes this
// rank's quiet a matter for every rank.)
// (OsJoin: waits for a child OS process to end, csp::multiprocess's parent
// side. Like Join it is never ended by the breaker; like Remote it makes
// this OS process's quiet a matter for every OS process.)
enum class WaitKind : std::uint8_t { Running, Blocked, Join, Timed, Remote, Rank, RankJoin, OsJoin };

// WaitReason: what a parked process waits on, in the words of the layer that
// parks it, for deadlock reports: "process 'p' " + phrase, then " 'object'"
// when object is set. park takes a pointer to one that stays valid while the
// process is parked (a static one; one kept in the object it waits on).
// `subject` says what the wait is on, for the layers above, which explain a
// deadlock (set_deadlock_explainer): a Join (kind Join, here), or an object
// of theirs (a channel read or written, a choice, a barrier). The runtime
// only carries it.
enum class Subject : std::uint8_t { None, Join, Read, Write, Choice, Barrier };
struct WaitReason {
    const char* phrase = "is waiting";
    const char* object = nullptr;
    const void* subject = nullptr;
    Subject subject_kind = Subject::None;
};

// kUpperBytes: the per-process storage a Parker keeps for the layers above
// (see Parker::upper).
inline constexpr std::size_t kUpperBytes = 144;

struct Inbox;

// Parker: the runtime's record of one process or thread, in the shared arena
// so that partners in other OS processes can win its selection word.
struct Parker {
    // (epoch << 32) | outcome. The epoch grows with every wait so that a late
    // waker of an earlier wait (a timer, say) cannot end a later one.
    std::atomic<std::uint64_t> selection{0};
    // Running / Parked (/ Notified for threads): the futex word of a parked
    // thread; for a fiber only a note for the deadlock detector.
    std::atomic<std::uint32_t> state{0};
    // What the current wait is for: read by the deadlock report.
    std::atomic<WaitKind> wait_kind{WaitKind::Running};
    // True for plain threads (main, std::thread), false for fibers.
    bool is_thread = false;
    // Its last wait was ended by the breaker of a deadlock across OS
    // processes (who may be in another: its report is in the arena).
    bool broken_across = false;
    // A guest (a thread whose host thread runs it on a stack of its own:
    // GuestHost): ready() hands it to its host. (Set before it first waits.)
    bool is_guest = false;
    // Its track in the trace (trace.cpp), given when its process starts.
    std::uint32_t trace_track = 0;
    // (Atomic: the detector reads it while a thread may be starting a new
    // wait; what it read is used only if nothing moved meanwhile.)
    std::atomic<const WaitReason*> wait_reason{nullptr};
    // References: the process itself, plus each pending timer that may still
    // try to complete one of its waits, and each waker that keeps its address
    // past the wait it may end (release_parker). Freed when the last one goes.
    std::atomic<std::int32_t> refs{1};
    // Its slot in the registry of live parkers, walked by the deadlock
    // detector (under the registry's lock).
    std::uint32_t registry_slot = 0;
    // The private record of the process (valid in the OS process that owns it).
    void* owner = nullptr;
    // The inbox of the OS process that owns it: a waker in another OS
    // process hands a fiber over through it (see ready()).
    Inbox* home = nullptr;
    Parker* inbox_next = nullptr;  // the inbox's list (lock-free stack)
    // A rescue of this parker's wait, for its own OS process to finish
    // (rescue, Inbox::rescues): one word, (token << 32) | outcome, the
    // outcome's top bit (kRescueDone) set once a thread's is finished
    // (park_thread looks for it). One word, so that a reader never pairs one
    // rescue's token with another's flag, and a wait is posted once.
    Parker* rescue_next = nullptr;
    std::atomic<std::uint64_t> rescue{0};
    static constexpr std::uint64_t kRescueDone = 0x80000000u;
    // The waits it has had, kept when it is freed for its next process
    // (new_parker), whose waits go on from there.
    std::uint64_t epochs_done = 0;
    // The lock every completer of the current wait holds, when there is one
    // (null otherwise): they win the selection word with complete_locked,
    // and the deadlock breaker takes it too before it ends the wait.
    SharedLock* completer_lock = nullptr;
    // Arena memory the layers above may attach (the waiter records of a
    // choice, reused from one choice to the next); the runtime frees it with
    // arena_free when the parker goes.
    void* upper_block = nullptr;
    // Storage for the layers above, zeroed when the parker is made: one
    // struct laid out by them (csp::detail::ProcessArea, whose first member
    // is the channel layer's channels::WaitArea) and reached only through
    // upper_area<Area>(p), which checks that it fits. The runtime never looks
    // inside. (In the arena, like the parker: partners in other OS processes
    // reach the wait records kept there.)
    alignas(16) std::byte upper[kUpperBytes]{};
};
static_assert(sizeof(Parker) <= 256, "a Parker grew past 256 bytes (a million processes have one each)");

// upper_area<Area>(p): the layers' view of p->upper.
template <class Area>
Area& upper_area(Parker* p) noexcept {
    static_assert(sizeof(Area) <= kUpperBytes, "the layers' per-process area outgrew Parker::upper");
    static_assert(alignof(Area) <= 16, "Parker::upper is aligned to 16 bytes");
    static_assert(std::is_trivially_destructible_v<Area>, "Parker::upper is never destroyed");
    return *std::launder(reinterpret_cast<Area*>(p->upper));
}

// local tells whether `p` belongs to the calling OS process (a partner in
// the same OS process can take a value straight from its private memory).
// (Hidden, as g_plain_home below, so local() links only inside libcsp;
// local_inbox() for the libraries beside.)
extern Inbox* g_local_inbox __attribute__((visibility("hidden")));
inline bool local(const Parker* p) noexcept { return p->home == g_local_inbox; }
Inbox* local_inbox() noexcept;

// g_plain_home: the home of a channel whose fast paths may run here:
// g_local_inbox while nothing observes (trace_detail::observed is 0), else
// an address no channel has for its home. One load for the test of
// channels::rendezvous_here where there were two, and straight from libcsp's
// own data: hidden, so no GOT entry to go through (and nothing outside
// libcsp can name it, so no executable can hold a copy relocation of it
// that libcsp would not see). refresh_plain_home: after either changes.
extern std::atomic<Inbox*> g_plain_home __attribute__((visibility("hidden")));
void refresh_plain_home() noexcept __attribute__((visibility("hidden")));
// (In a forked child, first: the lock made afresh, no channel plain yet.)
void plain_home_after_fork() noexcept __attribute__((visibility("hidden")));

// current returns the parker of the calling process: its fiber's, or the
// calling thread's (registered on first use).
Parker* current() noexcept;
// current_if_known: the same, or null from a thread that has not used csp
// (registering nobody).
Parker* current_if_known() noexcept;

// name_this_thread: the calling plain thread, not yet known to csp, is
// known from now on by `name` (in reports, graphs and traces) rather than
// "thread <id>" (a Python process: python/). False if it was known already.
bool name_this_thread(std::string_view name);

// current_name returns the name of the calling process ("main", a thread id,
// or the process's name).
const char* current_name() noexcept;

inline std::uint64_t waiting_word(std::uint64_t token) noexcept { return token << 32; }

// begin_wait starts a new wait of `p` (the caller's own parker) and returns
// the token that wakers compare against.
inline std::uint64_t begin_wait(Parker* p) noexcept {
    const std::uint64_t token = (p->selection.load(std::memory_order_relaxed) >> 32) + 1;
    p->selection.store(waiting_word(token), std::memory_order_release);
    return token;
}

// try_complete ends wait `token` of `p` with `outcome` if nobody else has;
// true when this caller won (and must then call ready(p)).
inline bool try_complete(Parker* p, std::uint64_t token, std::uint32_t outcome) noexcept {
    std::uint64_t expected = waiting_word(token);
    return p->selection.compare_exchange_strong(expected, waiting_word(token) | outcome,
                                                std::memory_order_acq_rel,
                                                std::memory_order_acquire);
}

// complete_locked is try_complete for a wait all of whose completers hold
// one lock, p->completer_lock (held by the caller): a plain load and store.
inline bool complete_locked(Parker* p, std::uint64_t token, std::uint32_t outcome) noexcept {
    if (p->selection.load(std::memory_order_relaxed) != waiting_word(token)) return false;
    p->selection.store(waiting_word(token) | outcome, std::memory_order_release);
    return true;
}

// outcome_of reads the outcome of the caller's current wait.
inline std::uint32_t outcome_of(const Parker* p) noexcept {
    return static_cast<std::uint32_t>(p->selection.load(std::memory_order_acquire));
}

// Release: what park lets go of once the caller is suspended (see the park
// rule above); usually the lock under which the caller queued its waiters.
struct Release {
    void (*fn)(void*) noexcept = nullptr;
    void* arg = nullptr;
    void operator()() const noexcept {
        if (fn) fn(arg);
    }
};

// unlocking(lock): a Release that unlocks `lock`.
template <class Lock>
Release unlocking(Lock& lock) noexcept {
    return {[](void* l) noexcept { static_cast<Lock*>(l)->unlock(); }, &lock};
}

// park suspends the caller (whose parker is `p`) until ready(p), and returns
// the outcome of its wait. `release` runs once the caller is suspended (a
// fiber: on the context it switched to; a thread: before it sleeps).
std::uint32_t park(Parker* p, WaitKind kind, const WaitReason* reason, Release release = {}) noexcept;

// park_until is park with a deadline: when it passes, the runtime tries to
// complete the wait with kTimedOut. No thread per timer: fibers use their
// worker's timer heap (armed after the switch), threads a timed futex wait.
std::uint32_t park_until(Parker* p, std::uint64_t token, WaitKind kind, const WaitReason* reason,
                         std::chrono::steady_clock::time_point deadline,
                         Release release = {}) noexcept;

// ready makes `p` runnable; call it only after winning p's wait. A waker
// of a process of another OS process readies it while it still holds what
// made it the winner (the channel lock), so that should it die on the way,
// whoever repairs that can rescue the wait.
void ready(Parker* p) noexcept;

// rescue: the waker that was ending wait `token` of `p` died on the way:
// before it won the wait, or after, perhaps before it readied `p`. An
// outcome `o` it could have set is one with (o & won_mask) == won_as (the
// layers above encode the waiter's position there); an outcome of another
// waker is left to that waker. Otherwise the wait ends with `outcome`
// (replacing the dead waker's, whose value may be half delivered) and `p` is
// readied exactly once: when the dead waker won the wait, by p's own OS
// process, which alone can tell whether the waker had readied it (see
// Inbox::rescues).
void rescue(Parker* p, std::uint64_t token, std::uint32_t won_mask, std::uint32_t won_as,
            std::uint32_t outcome) noexcept;

// release_parker drops a reference to p (one taken on p->refs by whoever
// keeps p's address past a wait it may end).
void release_parker(Parker* p) noexcept;

// wake = try_complete + ready; true when this caller ended the wait.
inline bool wake(Parker* p, std::uint64_t token, std::uint32_t outcome) noexcept {
    if (!try_complete(p, token, outcome)) return false;
    ready(p);
    return true;
}

// pooled_allocate / pooled_free: storage for small records made and freed by
// the million (a process's call), kept in pools of 16-byte size classes up
// to kPooledMax bytes instead of glibc's malloc, which costs a few hundred
// instructions a pair once its thread cache of 7 per size runs out. Larger
// sizes go to operator new. pooled_free must be given the size allocated.
// (Under AddressSanitizer both are plain operator new and delete, so a use
// after free is still caught.)
inline constexpr std::size_t kPooledMax = 512;
void* pooled_allocate(std::size_t size);
void pooled_free(void* p, std::size_t size) noexcept;

// ProcessBody: what a new process runs. run() must not throw.
// Bodies are pooled (see pooled_allocate); a body type aligned beyond
// operator new's default goes to the aligned operator new instead.
class ProcessBody {
public:
    virtual ~ProcessBody() = default;
    virtual void run() noexcept = 0;
    static void* operator new(std::size_t size) { return pooled_allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pooled_free(p, size); }
    static void* operator new(std::size_t size, std::align_val_t al) { return ::operator new(size, al); }
    static void operator delete(void* p, std::size_t size, std::align_val_t al) noexcept {
        ::operator delete(p, size, al);
    }
    // The process's name, shared with the Process it came from and its
    // siblings (a million processes made by one factory hold one string).
    std::shared_ptr<const std::string> name;
    const char* name_c_str() const noexcept { return name ? name->c_str() : "process"; }
};

// start_processes runs each body as a new fiber process; callable from
// fibers and from plain threads. A body is destroyed when its run() returns.
// Idle workers are woken once rather than once per process (a cross-core
// wake-up costs microseconds).
void start_processes(std::vector<std::unique_ptr<ProcessBody>>& bodies);

// Join: the caller waits until `count` processes have arrived.
class Join {
public:
    explicit Join(std::int64_t count = 0) noexcept : remaining_(count) {}
    // add: `count` more processes will arrive (call before they can).
    void add(std::int64_t count) noexcept { remaining_.fetch_add(count, std::memory_order_seq_cst); }
    // arrive: one process is done (call as the last thing it does).
    void arrive() noexcept;
    // wait parks the caller until every process has arrived (true), or
    // until interrupt() ends the wait (false).
    bool wait() noexcept;
    // interrupt: end the wait in progress, from any thread, so its joiner
    // can answer a signal (Python's Ctrl-C: python/); or, if none is in
    // progress, the next one, at once. The processes go on; a later wait()
    // waits for them again.
    void interrupt() noexcept;
    // waited_as: the reason its joiner waits with: the Join's identity in
    // the views of the network (a joiner's wait_reason; a process's group).
    const WaitReason* waited_as() const noexcept { return &reason_; }

private:
    std::atomic<std::int64_t> remaining_;
    SpinLock lock_;             // held by the joiner until it has parked
    Parker* joiner_ = nullptr;  // under lock_
    std::uint64_t token_ = 0;
    bool interrupted_ = false;  // under lock_: an interrupt() no wait has taken yet
    WaitReason reason_{"is waiting for the processes it runs to end", nullptr, this, Subject::Join};
};

// Guests: processes that one plain thread, their host, runs itself, each on
// a stack of its own, switching among them when one waits. Python's green
// processes are guests (python/: a greenlet runs the Python code, its guest
// each csp call the Python code makes, so that what a partner writes while
// it waits is never on a stack that greenlet copies away). To the rest of
// csp a guest is a thread: a name, a parker, its waits and deadlock
// reports. Only its waits differ: a guest that parks goes back to the host
// code that entered or resumed it, and ready() puts it in its host's queue,
// from any thread or OS process. Every member is for the host thread only.
struct Guest;
class GuestHost {
public:
    GuestHost();  // on the host thread
    // (Guests still there are left as they are: they may be parked.)
    ~GuestHost();
    GuestHost(const GuestHost&) = delete;
    GuestHost& operator=(const GuestHost&) = delete;

    // add: a new guest, known by `name`, carrying `user` (user_of).
    Guest* add(std::string_view name, void* user);
    // remove: a guest that is not parked (its last enter or resume returned
    // true, or it never ran).
    void remove(Guest* g) noexcept;
    // enter runs fn(arg) on g's stack, as g (current() there is g's parker).
    // True once fn has returned; false when g parked first: once take() or
    // wait() has handed g out, resume(g) runs it on. fn must not throw.
    bool enter(Guest* g, void (*fn)(void*), void* arg) noexcept;
    bool resume(Guest* g) noexcept;
    // take: a guest readied since it parked, or null. (Guests' deadlines
    // that have passed end their waits here first.)
    Guest* take() noexcept;
    // wait parks the host thread until take() has a guest to give (a Join
    // wait: guests that can go no further are a deadlock, reported to them).
    void wait() noexcept;
    static void* user_of(const Guest* g) noexcept;
    // in_guest: the caller runs on a guest's stack.
    static bool in_guest() noexcept;

    struct State;

private:
    std::unique_ptr<State> s_;
};

// sleep_for suspends only the calling process; zero or less yields.
void sleep_for(std::chrono::nanoseconds duration) noexcept;

// yield: the calling fiber goes behind every runnable process of its worker
// (due timers fire on the way); a plain thread yields its core.
void yield() noexcept;

// went_on: the calling process has just fed others without waiting (a
// write, or a choice's output or skip guard, completed at once). A process
// that computes between such communications would otherwise keep its
// worker from every other process of it for as long as it goes on (no
// preemption): the partners it feeds wait, and so do those that should
// refill what it takes. So one that has gone on without waiting or
// yielding for longer than kSlice gives way at its next such communication,
// as if it called yield(), when its worker has another process to run (Go
// preempts a goroutine after 10 ms). Reads and input guards do not count: a
// reader that goes on without waiting drains a buffer, and yielding it
// half-way let a hundred writers fill an infinite buffer to half a million
// values (bench/buffered's csp-infinite, 21 -> 30 ns). Checked by the
// clock only at the 4th, 8th, 16th... and then every 64th such write
// since the process last waited (every switch starts the count again:
// t_gone_on, set in the switch), so that a network whose processes wait at
// least every third communication (commstime: Delta's two writes, then a
// read that waits) never reads it, and the hot path is one decrement. Not
// on a plain thread, and not while a simulation runs (it decides
// preemption itself: sim_preempt). A process that has just met a lock held
// by another worker is looked at, at its next such communication, at once
// (note_contended_by): so a write that does not wait may switch, and even
// move the process to another thread, as a write that waits may.
inline constexpr std::int64_t kSlice = 4'000'000;  // ns (a coarse clock: 4 to 8 ms)
struct GoneOn {
    std::int32_t budget = 4;  // communications to the next look (set to 4 by every switch)
    std::uint32_t step = 0;   // the last budget given (0: none since the switch)
    std::int64_t since = 0;   // coarse ns at the first look (the 4th)
    // A worker's index + 1: process `mover` met a lock held there
    // (note_contended_by), and moves there at its next such write.
    std::uint32_t move_to = 0;
    const void* mover = nullptr;
    std::uint64_t mover_turn = 0;  // its worker's turns then (a switch since: the move is off)
};
extern constinit __attribute__((tls_model("initial-exec"))) thread_local GoneOn t_gone_on;
void gone_on_check() noexcept;
inline void went_on() noexcept {
    if (--t_gone_on.budget == 0) [[unlikely]] gone_on_check();
}
// switched: a stretch without waiting ends (every switch: context.cpp).
inline void switched() noexcept {
    t_gone_on.budget = 4;
    t_gone_on.step = 0;
}
// note_contended_by: the calling fiber found a lock of shared state held by
// worker `worker` of this OS process (SharedLock::lock_slow). Processes
// that feed one channel from two workers take its lines from each other's
// core at every message; so a process that does so moves to the worker of
// the other, at its next write that does not wait (went_on), and a worker
// whose processes keep doing so stops stealing for a while
// (Worker::may_steal). Called with the lock taken.
void note_contended_by(std::uint32_t worker) noexcept;
// processes_moved: how many times a process of this OS process has moved
// so (for tests).
std::uint64_t processes_moved() noexcept;

// run_io runs `call` on a helper thread; only the calling process waits.
void run_io(const std::function<void()>& call) noexcept;
// run_os_job: the same for a call that forks a child OS process and waits
// for its end (fork.cpp), from a fiber or a thread: its caller waits in an
// OsJoin wait, and the helper counts as running (for the deadlock detector)
// but while it waits in waitid (os_job_waiting).
void run_os_job(const std::function<void()>& call) noexcept;
// name_os_process: in a child OS process, its name in reports of deadlocks
// across OS processes (across.cpp).
void name_os_process(std::string_view name) noexcept;

// Deadlocks across MPI ranks (libcsp-mpi). When every process of this OS
// process waits in a Blocked, Join or Rank wait, with at least one Rank wait
// (so that no report can be made here alone), the hook is called on the
// thread that found it; a rank in that state is quiet until a message wakes
// one of them. rank_quiet_now tells whether it still is, and if `lines` is not
// null puts there the processes' lines of a report ("  process 'x' is blocked
// ..."): call it so only where nothing can wake a Rank wait meanwhile (the
// thread that alone receives for this rank). The hook gets no lines: the
// thread that found the rank quiet is a worker, and another thread that
// receives can wake a process there while the lines are read, which then runs
// on and frees what its line names. break_rank_deadlock ends every Blocked
// and Rank wait with kDeadlocked and `report`, once every rank has been found
// quiet at once.
void set_rank_quiet_hook(void (*hook)()) noexcept;

// A deadlock's explanation, by the layers above: the detector calls it with
// every registered parker (each parked, none can wake any: the registry is
// locked, so none leaves while it looks) and appends what it returns to the
// report (the wait-for cycle, ends nobody holds). It may throw (then the
// report goes without it). body_of(p): the body a process runs, null for a
// plain thread; name_of(p): its name.
// `reported` is called once the deadlock is broken, outside every lock (the
// explainer may find a moment that turns out no deadlock: then it is not).
using DeadlockExplainer = std::string (*)(const std::vector<Parker*>& parked);
void set_deadlock_explainer(DeadlockExplainer explain, void (*reported)() noexcept) noexcept;
// The same across OS processes (runtime/across.cpp): `part` describes this
// OS process's parkers as text, when it confirms that it is quiet (under the
// registry's lock, as an explainer, but not yet proven deadlocked: another
// OS process may still wake one of them, so it reads them as write_graph
// does); whoever breaks the deadlock calls
// `join` with the part and the title ("OS process 14061, multiprocess
// 'x'") of every OS process, in the order they were made, and appends what
// it returns to the report. Either may throw (then the report goes without).
using AcrossPart = std::string (*)(const std::vector<Parker*>& parked);
using AcrossJoin = std::string (*)(const std::vector<std::pair<std::string, std::string>>& titled_parts);
void set_across_explainer(AcrossPart part, AcrossJoin join) noexcept;
// across_graph_drawn: a deadlock across OS processes has been drawn (the
// join hook says so, in whichever OS process broke it): the exit's graph
// leaves it in place.
void note_across_graph_drawn() noexcept;
bool across_graph_drawn() noexcept;
// parts_across: for a view of the whole network at any time
// (csp::write_graph): the part (AcrossPart) of every live OS process of the
// network, titled, in the order they were made (the program's own first).
// This one's is made here; the others' are asked for, and given by an idle
// worker of each, waited for up to `wait`: one that has not answered by
// then (every worker busy with processes that do not pause, or the OS
// process stopped) comes with no part and a title that says so. Empty when
// this OS process is the only one.
std::vector<std::pair<std::string, std::string>> parts_across(std::chrono::milliseconds wait);
// part_now: this OS process's part (AcrossPart) of that moment.
std::string part_now();
ProcessBody* body_of(const Parker* p) noexcept;
const char* name_of(const Parker* p) noexcept;
// running_now: p is running on a worker at this moment (not parked, nor
// only ready to run); a plain thread, not parked. For the eye: it may have
// changed by the time it is read.
bool running_now(const Parker* p) noexcept;
// with_registered: `see` runs with every registered parker, under the
// registry's lock: none leaves meanwhile (its body and name stay), but those
// not parked go on running. For a view of the network at any time
// (csp::write_graph): what a parker waits on may be read only while
// wait_seen(p) says it waits, and reads the same before and after.
void with_registered(void (*see)(const std::vector<Parker*>& parked, void* ctx), void* ctx);
struct WaitSeen {
    std::uint64_t word;  // changes whenever p begins or ends a wait
    bool waiting;        // parked in a wait not yet ended
    bool operator==(const WaitSeen&) const noexcept = default;
};
WaitSeen wait_seen(const Parker* p) noexcept;
// set_exit_hook: called once as main's runtime begins to stop at exit,
// before it joins the processes still running (CSP_GRAPH's graph at exit).
void set_exit_hook(void (*hook)() noexcept) noexcept;
// ending: main's runtime has begun to stop (at exit, or an exit() from
// inside a process): a helper thread of the layers above uses it no more.
bool ending() noexcept;

// set_rank_serve_hook: what an idle worker calls while processes wait for
// another MPI rank: Begin, then Round after Round (one round of libcsp-mpi's
// communication thread's work, taken in turn with that thread: see
// mpi/comm.cpp; true if it did something), then End when it stops (to sleep,
// or because no process waits for a rank any more). A worker that leaves to
// run a process it woke stays begun: it comes back soon. nullptr: none.
enum class RankServe { Begin, Round, End };
void set_rank_serve_hook(bool (*hook)(RankServe step) noexcept) noexcept;

// ignore_threads_started_so_far: the OS threads there now that do not use
// csp (an MPI library's, started by MPI_Init) do not count as threads that
// may wake a process, which would keep the deadlock detector from reporting.
void ignore_threads_started_so_far();
// ignore_this_thread: the calling thread never uses csp (a helper of the
// layers above, e.g. the one that draws the graph on SIGUSR1): it does not
// count either. (A few such threads per OS process: kQuietThreads.)
inline constexpr int kQuietThreads = 8;
void ignore_this_thread() noexcept;
bool rank_quiet_now(std::string* lines);
void break_rank_deadlock(const std::string& report);

// deadlock_report: when the runtime ended the calling process's last wait
// with kDeadlocked, the report it made then (each blocked process and what
// it waited on); "" otherwise. The report travels with the wake-up: each
// process it woke holds its own reference.
std::string deadlock_report();

// in_fiber tells whether the caller is a fiber process (not a plain thread).
bool in_fiber() noexcept;

// ---- deterministic simulation (sim.cpp; csp/sim.hpp drives it) ---------------
//
// While a simulation runs, one worker (the first) runs every fiber, each
// pick of the next process to run and each choice of an order among guards
// is a decision taken from a seeded generator or a script (sim_choose), and
// time is virtual: now() stands still while processes run and jumps to the
// next timer when none can (sim_advance).

// g_sim_now: the virtual time (steady-clock ns) while a simulation runs, 0
// otherwise.
extern std::atomic<std::int64_t> g_sim_now;
inline bool simulating() noexcept { return g_sim_now.load(std::memory_order_relaxed) != 0; }

// now: the steady clock, or the virtual time of a simulation.
inline std::chrono::steady_clock::time_point now() noexcept {
    if (const std::int64_t v = g_sim_now.load(std::memory_order_relaxed)) [[unlikely]] {
        return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(v));
    }
    return std::chrono::steady_clock::now();
}

// sim_choose: a decision in [0, n) (0 when n <= 1, not recorded).
std::uint32_t sim_choose(std::uint32_t n) noexcept;
// sim_elapsed_ns: the virtual time since the simulation began.
std::int64_t sim_elapsed_ns() noexcept;
// sim_preempt: the calling process has just communicated (a read, a write,
// a choice): a decision whether it goes on or yields to another runnable
// process, as on several workers its partner, readied, would run beside
// it. (None when nothing else can run; not on a plain thread.)
void sim_preempt() noexcept;

// sim_begin: a simulation starts, its decisions from `seed`, or first from
// `script` (then from the seed when it runs out). The caller is a plain
// thread, and no process may be running. Throws std::logic_error otherwise.
// sim_end: it is over (every process it ran has ended); the decisions it
// took, and whether a script did not fit (a decision out of range, or the
// run went beyond the script's end).
void sim_begin(std::uint64_t seed, const std::vector<std::uint32_t>* script);
struct SimRecord {
    std::vector<std::uint32_t> decisions;
    bool misfit = false;
};
SimRecord sim_end() noexcept;

// ---- OS processes -------------------------------------------------------------

// ForkHooks: what run_os_process runs on each side of a fork.
struct ForkHooks {
    // In the child, once its runtime has been re-initialised (a fresh
    // scheduler, logger, stack pool and inbox; tracing off). Runs on a plain
    // thread of the child and must end with exit_os_process.
    void (*child)(void* arg) noexcept;
    // In the parent, right after the fork (pid < 0: it failed, -errno),
    // before the parent waits for the child.
    void (*parent)(void* arg, int pid) noexcept;
    // In the parent, once the child has ended (status as from waitpid) and
    // before it is reaped: its pid is not anybody else's yet, so locks it
    // died holding can still be told by their holder (SharedLock).
    void (*ended)(void* arg, int pid, int status) noexcept;
    void* arg;
    // Optional, on the forking thread: right before the fork, and in the
    // parent right after it, before `parent` (Python's interpreter: the GIL
    // taken and PyOS_BeforeFork, then PyOS_AfterFork_Parent; python/).
    void (*before_fork)(void* arg) noexcept = nullptr;
    void (*after_fork)(void* arg) noexcept = nullptr;
};

// run_os_process forks the calling OS process and waits for the child to
// end, parking only the calling process; returns the child's wait status
// (as from waitpid), or -1 if the fork failed. The fork happens on an io
// helper thread, so the child starts on a full-size stack and the caller's
// worker keeps running the other processes.
int run_os_process(const ForkHooks& hooks) noexcept;

// exit_os_process ends a child made by run_os_process: flushes stdio and
// _exits (no static destructors: the parent's objects the child inherited
// are not the child's to destroy).
[[noreturn]] void exit_os_process(int code) noexcept;

}  // namespace csp::runtime
