// fork.cpp: running a child OS process (csp::multiprocess forks through here).
//
// Owns: run_os_process (fork on an io helper thread, wait for the child
// in an OsJoin wait),
// the child's fresh start (after_fork_in_child) and exit_os_process, and
// what a child leaves in the arena: its inbox, made here before the fork,
// and the parkers it freed, handed back through the inbox when it ends
// cleanly. Both go to the next child, so forking in a loop keeps the arena
// bounded. A child that
// dies leaves them where they are: a waker may still hand one of its fibers
// to its inbox as its channels are poisoned, and its parkers may be queued
// in channels.
//
// Why forking here is safe without pthread_atfork around the runtime's
// locks (DESIGN.md asks for a quiescent point; this is the reasoning that
// replaces it). The child has only the thread that forked, an io helper
// that holds no runtime lock while it forks, and private copies of
// everything else, some of it perhaps locked by threads it does not have.
// It never takes a private lock it inherited:
//   - the runtime (workers, queues, registry, io pool): dropped, not used;
//     the child's first use of csp makes a new one (as on a program's first
//     use). g_runtime is null in the child only, and the `making` lock of
//     rt() is free at the fork, since the parent's runtime already exists;
//   - the free lists and pools (pools.cpp), the stack pool (context.cpp),
//     the logger (log.cpp): replaced by new, empty objects over the old
//     ones before anything uses them; so is the trace's (the child writes
//     its own events, for the parent to take in: trace.cpp);
//   - thread-locals of the forking thread: its worker (none), its thread
//     record (the parent's, released without destroying it) and its lock id
//     (t_lock_id: made again from the child's pid at its next lock);
//   - malloc and stdio: glibc's own fork handlers make them usable.
// Shared state (the arena: channels, parkers, inboxes, its allocator's
// process-shared mutex) is one object for parent and child, so a lock held
// there at the fork is held by a live thread of the parent, who releases it.
// pthread_atfork would buy nothing more, and its prepare handler would have
// to take every one of those locks in an order that every path respects
// (the deadlock breaker takes channel and run-queue locks under the
// registry lock), waiting for every worker at each fork.
#include "runtime/scheduler.hpp"

#include "runtime/arena.hpp"
#include "runtime/context.hpp"
#include "runtime/free_list.hpp"
#include "runtime/log.hpp"
#include "runtime/shared_lock.hpp"
#include "runtime/trace.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <new>
#include <iostream>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace csp::runtime {

bool g_in_child = false;
Inbox* g_given_inbox = nullptr;

namespace {

// The inboxes of children that ended cleanly, for the next children
// (private to this OS process: a child starts with none).
SpinLock g_spare_lock;
std::vector<Inbox*>* g_spare_inboxes = new std::vector<Inbox*>;  // (never destroyed: forks may come late)

Inbox* inbox_for_child() {
    {
        Locked<SpinLock> hold(g_spare_lock);
        if (!g_spare_inboxes->empty()) {
            Inbox* box = g_spare_inboxes->back();
            g_spare_inboxes->pop_back();
            box->head.store(nullptr, std::memory_order_relaxed);
            box->rescues.store(nullptr, std::memory_order_relaxed);
            box->handed_back.store(0, std::memory_order_relaxed);
            across_adopt(box, false);
            return box;
        }
    }
    Inbox* box = arena_new<Inbox>();
    across_adopt(box, true);
    return box;
}

void spare(Inbox* box) noexcept;

// take_back: the inbox of a reaped child, with the parkers it handed back,
// for the next child, if it ended cleanly (exit status 0, parkers handed
// back); otherwise it stays where it is.
void take_back(Inbox* box, int status) noexcept {
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        box->handed_back.load(std::memory_order_acquire) == 0) {
        return;
    }
    spare(box);
}

void spare(Inbox* box) noexcept {
    Locked<SpinLock> hold(g_spare_lock);
    try {
        g_spare_inboxes->push_back(box);
    } catch (const std::bad_alloc&) {  // (then it is simply not reused)
    }
}

// hand_back: in a child about to end, its free parkers, through its inbox.
// The thread that ends it is its last process: the fibers have ended, but
// one whose end woke this thread may still be giving back its parker, so
// wait for the live count (which falls after that) to reach zero, briefly
// (a fiber left blocked for ever keeps its parker).
void hand_back() noexcept {
    Inbox* box = g_given_inbox;
    if (!box) return;
    if (Runtime* r = g_runtime.load()) {
        for (int i = 0; i < 10000 && r->live.load(std::memory_order_acquire) > 0; ++i) sched_yield();
    }
    release_thread_parker_at_exit();
    box->spare_parkers = take_free_parkers();
    box->handed_back.store(1, std::memory_order_release);
}

void after_fork_in_child(Inbox* given) noexcept {
    g_self_pid = static_cast<std::uint32_t>(getpid());  // before any SharedLock is taken
    t_lock_id = 0;                                      // (made again from it at the next lock)
    plain_home_after_fork();                           // before trace's observe refreshes it
    arena_start_child(&given->heaps);                  // before anything allocates
    g_in_child = true;
    g_given_inbox = given;
    ::new (&g_spare_lock) SpinLock;  // (the parent's spares are the parent's)
    g_spare_inboxes = new std::vector<Inbox*>;
    reset_logger_after_fork();
    reset_stacks_after_fork();
    reset_pools_after_fork();
    if (given) {  // (the parkers an earlier child left in it are this child's now)
        adopt_free_parkers(given->spare_parkers);
        given->spare_parkers = nullptr;
    }
    trace_after_fork_in_child();
    t_worker = nullptr;
    forget_thread_record_after_fork();
    g_runtime.store(nullptr);
    g_local_inbox = nullptr;
    refresh_plain_home();
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
        Inbox* box;
        try {
            box = inbox_for_child();
        } catch (const std::bad_alloc&) {
            hooks.parent(hooks.arg, -ENOMEM);
            return;
        }
        const pid_t parent = getpid();
        if (hooks.before_fork) hooks.before_fork(hooks.arg);
        const pid_t pid = fork();
        if (pid != 0 && hooks.after_fork) hooks.after_fork(hooks.arg);
        if (pid == 0) {
            // A child outlives nothing: if the parent is killed, so is it
            // (it could otherwise wait for the parent's processes for ever).
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);  // the parent died before that
            after_fork_in_child(box);
            hooks.child(hooks.arg);
            exit_os_process(0);
        }
        if (pid < 0) {
            const int error = errno;
            across_reaped(box);
            spare(box);  // (unused)
            hooks.parent(hooks.arg, -error);
            return;
        }
        hooks.parent(hooks.arg, pid);
        // Wait for it to end, but leave it unreaped until what it may have
        // held is taken back (its pid names it in the locks it held).
        // (Meanwhile, only the child can make this OS process run again:
        // see across.cpp.)
        siginfo_t info{};
        os_job_waiting(true);
        while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0) {
            if (errno != EINTR) {
                os_job_waiting(false);
                logger().error("waitid({}) failed: {}", pid, std::strerror(errno));
                return;
            }
        }
        os_job_waiting(false);
        const int ended = info.si_code == CLD_EXITED ? (info.si_status & 0xff) << 8 : info.si_status & 0x7f;
        hooks.ended(hooks.arg, pid, ended);
        arena_take_back(&box->heaps, static_cast<std::uint32_t>(pid));
        int st = 0;
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                logger().error("waitpid({}) failed: {}", pid, std::strerror(errno));
                return;
            }
        }
        status = st;
        across_reaped(box);
        trace_child_reaped(pid);
        take_back(box, st);
    };
    run_os_job(job);
    return status;
}

void exit_os_process(int code) noexcept {
    if (code == 0) hand_back();
    trace_child_exit();
    flush_output();
    _exit(code);
}
}  // namespace csp::runtime
