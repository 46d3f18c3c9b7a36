// context.hpp: the fiber context switch and fiber stacks, in one place.
//
// Fibers run on pooled stacks and switch with Boost.Context's fcontext frame:
// on x86-64 through csp_jump_context, which ends in `ret` where Boost's
// jump_fcontext ends in an indirect `jmp` (context.cpp says why), elsewhere
// through Boost's make_fcontext/jump_fcontext. The switch carries a pointer
// to a record of the switch, so no `fiber` wrapper and no thread-local
// hand-over state are needed (see switch_context). Every switch
// goes through switch_context (or a fiber's final switch), which is also
// where the switches are announced to AddressSanitizer and ThreadSanitizer so
// that they follow the program from stack to stack, and where each context's
// C++ exception state is kept apart from the others'.
#pragma once

#include <boost/context/detail/fcontext.hpp>

#include <cstddef>

namespace csp::runtime {

// Entry: what a fiber runs; it returns the context to switch to when the
// fiber is done.
struct Context;
using Entry = Context* (*)(void* arg) noexcept;

// Context: one execution context, a fiber or a worker thread's own stack.
struct Context {
    boost::context::detail::fcontext_t fctx = nullptr;  // where it was suspended (stale while it runs)
    Entry entry = nullptr;            // a fiber's body and its argument (make_context)
    void* entry_arg = nullptr;
    const void* stack_bottom = nullptr;  // lowest address of the usable stack
    std::size_t stack_size = 0;
    void* asan_fake_stack = nullptr;  // AddressSanitizer's per-context state
    void* tsan_fiber = nullptr;       // ThreadSanitizer's per-context state
    const char* name = nullptr;       // the process's name, for the overflow report
    // The C++ runtime's exception state while this context is suspended
    // (context.cpp, "The exception state"): the stack of caught exceptions and
    // std::uncaught_exceptions().
    void* eh_caught = nullptr;
    unsigned eh_uncaught = 0;
};

// Arrival: work that must happen on the destination, right after the switch,
// once the source context is fully suspended (e.g. finish parking it).
using Arrival = void (*)(void* arg) noexcept;

// init_thread_context describes the calling thread's own stack as a context,
// so that fibers can switch back to it.
void init_thread_context(Context& c) noexcept;

// make_context prepares `c` to run entry(arg) on a pooled stack (made afresh
// when the pool is empty); its first frame is written when it first runs.
// entry returns the context to switch to when the fiber is done; the stack
// goes back to the pool once the fiber has left it.
void make_context(Context& c, Entry entry, void* arg);
// discard_context: the stack of a context that never ran, back to the pool.
void discard_context(Context& c) noexcept;

// switch_context suspends the running context `from` and runs `to`. On
// arrival, `arrival(arg)` runs on the destination before anything else.
void switch_context(Context& from, Context& to, Arrival arrival, void* arg) noexcept;


// stack_size is the usable size of a fiber stack (CSP_STACK_SIZE, in KiB;
// default 128 KiB). Untouched stack pages cost no memory.
std::size_t stack_size() noexcept;

// running_context: the fiber context the calling thread runs, or nullptr
// (defined by the scheduler, which knows; read by the overflow handler).
const Context* running_context() noexcept;

// install_overflow_handler turns a fault on a guard page into a clear
// message naming the process, instead of silent corruption. Per thread.
void install_overflow_handler() noexcept;

// reset_stacks_after_fork: in a forked child, before any fiber is made.
void reset_stacks_after_fork() noexcept;

}  // namespace csp::runtime
