// fork.cpp: running a child OS process (csp::multiprocess forks through here).
//
// Owns: run_os_process (fork on an io helper thread, wait for the child),
// the child's fresh start (after_fork_in_child) and exit_os_process.
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
//     ones before anything uses them; tracing is switched off (the parent
//     writes the trace file);
//   - thread-locals of the forking thread: its worker (none) and its thread
//     record (the parent's, released without destroying it);
//   - malloc and stdio: glibc's own fork handlers make them usable.
// Shared state (the arena: channels, parkers, inboxes, its allocator's
// process-shared mutex) is one object for parent and child, so a lock held
// there at the fork is held by a live thread of the parent, who releases it.
// pthread_atfork would buy nothing more, and its prepare handler would have
// to take every one of those locks in an order that every path respects
// (the deadlock breaker takes channel and run-queue locks under the
// registry lock), waiting for every worker at each fork.
#include "runtime/scheduler.hpp"

#include "runtime/context.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace csp::runtime {

bool g_in_child = false;

namespace {

void after_fork_in_child() noexcept {
    g_in_child = true;
    reset_logger_after_fork();
    reset_stacks_after_fork();
    reset_pools_after_fork();
    trace_detail::enabled.store(false);
    t_worker = nullptr;
    forget_thread_record_after_fork();
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
}  // namespace csp::runtime
