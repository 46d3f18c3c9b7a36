// context.cpp: fiber stacks, the context switch, and the sanitizer
// annotations that follow it.
//
// Stacks. Every stack has a guard page under it, so that an overflow faults
// there and is reported by name. Stacks are carved from slabs of kSlabStacks
// (one mmap each), and where the kernel has lightweight guard regions
// (MADV_GUARD_INSTALL, Linux 6.13) each stack's guard page is one: a mark in
// the page table, not a mapping of its own, so a million guarded stacks cost
// a few thousand mappings. (A PROT_NONE guard page splits the mapping: two
// mappings per stack, and the kernel allows about 65 000 per process.)
// Older kernels get mprotect guard pages for as many stacks as the kernel's
// limit on mappings leaves room for (guarded_budget) and none beyond, which
// is a warning, once; an overflow that faults anywhere, its stack pointer
// below its stack, is still reported by name (on_segv). CSP_STACK_GUARDS=
// mprotect takes the older kernels' way on any (to test it).
// Freed stacks are pooled and reused, pages and all: giving pages back
// (madvise) cost more than the rest of a process's start and end together.
// So resident stack memory stays at the high-water mark of live processes.
#include "runtime/context.hpp"

#include "runtime/log.hpp"
#include "runtime/runtime.hpp"
#include "runtime/sanitizers.hpp"
#include "runtime/spin_lock.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <mutex>
#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>


#ifdef CSP_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CSP_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace csp::runtime {
namespace {

constexpr std::size_t kSlabStacks = 64;

// forced_mprotect: CSP_STACK_GUARDS=mprotect asks for the older kernels'
// guard pages, with the smallest budget (so that a test of that path does
// not depend on the machine's vm.max_map_count).
bool forced_mprotect() noexcept {
    const char* env = std::getenv("CSP_STACK_GUARDS");
    return env && std::strcmp(env, "mprotect") == 0;
}

// guarded_budget: how many stacks get mprotect guard pages where the kernel
// has no guard regions. Each costs two mappings (the guard splits its slab),
// so: half of what vm.max_map_count (65 530 by default) leaves after 16 384
// for everything else, and at least 16 384. (Read when the first pool is
// made, never in a forked child: see reset_stacks_after_fork.)
std::size_t guarded_budget() noexcept {
    constexpr std::size_t kFloor = 16384;
    if (forced_mprotect()) return kFloor;
    std::size_t limit = 0;
    if (std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
        unsigned long v = 0;
        if (std::fscanf(f, "%lu", &v) == 1) limit = v;
        std::fclose(f);
    }
    return limit > 3 * kFloor ? std::max(kFloor, (limit - kFloor) / 2) : kFloor;
}

std::size_t page_size() noexcept {
    static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

// A stack is known by its bottom, its lowest address (just above the guard
// page, if it has one); it spans stack_size() bytes from there.
class StackPool {
public:
    StackPool() : budget_(guarded_budget()), light_guards_(!forced_mprotect()) {}
    // (A forked child's pool: its parent's guard pages are its mappings too.)
    explicit StackPool(const StackPool& parent) noexcept
        : budget_(parent.budget_),
          light_guards_(parent.light_guards_.load(std::memory_order_relaxed)),
          guarded_(parent.guarded_.load(std::memory_order_relaxed)),
          warned_(parent.warned_.load(std::memory_order_relaxed)) {}

    char* take() {
        {
            Locked<SpinLock> hold(lock_);
            if (!free_.empty()) {
                char* s = free_.back();
                free_.pop_back();
                return s;
            }
        }
        return fresh();
    }

    void give(char* bottom) noexcept {
        Locked<SpinLock> hold(lock_);
        free_.push_back(bottom);
    }

private:
    // fresh: a stack carved from the current slab; each slab slot is a guard
    // page and the stack above it. (The guard is made outside the lock: it
    // is a system call.)
    char* fresh() {
        const std::size_t size = stack_size();
        const std::size_t page = page_size();
        char* slot;
        {
            Locked<SpinLock> hold(lock_);
            if (slab_left_ == 0) {
                void* p = mmap(nullptr, (page + size) * kSlabStacks, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
                if (p == MAP_FAILED) throw std::bad_alloc();
                slab_ = static_cast<char*>(p);
                slab_left_ = kSlabStacks;
            }
            --slab_left_;
            slot = slab_ + slab_left_ * (page + size);
        }
        if (!guard(slot) && !warned_.exchange(true, std::memory_order_relaxed))
            logger().warn("fiber stacks from now on have no guard page: this kernel has no guard "
                          "regions (MADV_GUARD_INSTALL, Linux 6.13), and guard pages for more than {} "
                          "stacks do not fit in vm.max_map_count (an overflow of an unguarded stack "
                          "may corrupt another process's stack before it faults); raise it for more",
                          budget_);
        return slot + page;
    }

    // guard makes the page at `slot` a guard page; false if it could not.
    bool guard(char* slot) noexcept {
        if (light_guards_.load(std::memory_order_relaxed)) {
            if (madvise(slot, page_size(), kMadvGuardInstall) == 0) return true;
            if (errno == EINVAL) light_guards_.store(false, std::memory_order_relaxed);
        }
        return guarded_.fetch_add(1, std::memory_order_relaxed) < budget_ &&
               mprotect(slot, page_size(), PROT_NONE) == 0;
    }

    static constexpr int kMadvGuardInstall = 102;  // MADV_GUARD_INSTALL, if the headers lack it

    SpinLock lock_;
    std::vector<char*> free_;
    char* slab_ = nullptr;
    std::size_t slab_left_ = 0;
    const std::size_t budget_;               // mprotect guard pages at most (guarded_budget)
    std::atomic<bool> light_guards_;         // until the kernel says it has none
    std::atomic<std::size_t> guarded_{0};    // mprotect guard pages tried
    std::atomic<bool> warned_{false};
};

StackPool* g_pool = nullptr;

StackPool& pool() {
    static StackPool* p = g_pool = new StackPool;  // never destroyed: fibers may end during exit
    (void)p;
    return *g_pool;
}

}  // namespace
}  // namespace csp::runtime

// ---- The switch primitive ------------------------------------------------------
//
// jump(to, data) suspends the caller, saving its callee-saved registers (and
// the SSE/x87 control words) on its own stack, and resumes the context `to`
// where it was suspended, handing it {the caller's saved context, data}.
//
// On x86-64 it is csp_jump_context below rather than Boost's jump_fcontext,
// which it otherwise follows frame for frame: Boost's returns to the resumed
// context with an indirect `jmp`, so the call into the switch is never
// matched by a `ret`, the CPU's return-address predictor is off by one
// entry after every switch, and every return that follows in the resumed
// process (read -> block -> park -> switch, four or five per communication)
// is mispredicted. Ending the switch with `ret` keeps the predictor in step:
// every suspended fiber sits at the same return address (in switch_context),
// which is just what the predictor expects. bench/commstime on one worker went
// from 47.8 to 29.4 ns per communication (commit 7a0795b). Elsewhere, Boost's
// make_fcontext/jump_fcontext.
//
// csp_jump_context has no unwind table entry (nor has Boost's): nothing
// unwinds through a switch, and one that described only its entry would
// mislead a debugger once the stack pointer has moved to the other context.
// csp_context_start, the bottom frame of every fiber, marks the end of the
// stack for unwinders.
#if defined(__x86_64__) && defined(__ELF__)
#define CSP_OWN_SWITCH 1
extern "C" {
boost::context::detail::transfer_t csp_jump_context(void* to, void* data) noexcept;
void csp_context_start() noexcept;
[[noreturn]] __attribute__((visibility("hidden"), used)) void csp_fiber_main(boost::context::detail::transfer_t t) noexcept;
}
asm(R"(
    .text
    .globl csp_jump_context
    .hidden csp_jump_context
    .type csp_jump_context, @function
    .p2align 4
csp_jump_context:
    pushq %rbp
    pushq %rbx
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, %rax
    movq %rdi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    popq %rbx
    popq %rbp
    movq %rsi, %rdx
    ret
    .size csp_jump_context, .-csp_jump_context

    .globl csp_context_start
    .hidden csp_context_start
    .type csp_context_start, @function
    .p2align 4
csp_context_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %rax, %rdi
    movq %rdx, %rsi
    call csp_fiber_main@PLT
    ud2
    .cfi_endproc
    .size csp_context_start, .-csp_context_start
)");
#endif

namespace csp::runtime {
namespace {

namespace fc = boost::context::detail;

inline fc::transfer_t jump(fc::fcontext_t to, void* data) noexcept {
#ifdef CSP_OWN_SWITCH
    return csp_jump_context(to, data);
#else
    return fc::jump_fcontext(to, data);
#endif
}

[[noreturn]] void fiber_main(fc::transfer_t t) noexcept;

// fresh_context: a context that, resumed, calls fiber_main on the stack
// whose top is `top`.
fc::fcontext_t fresh_context(char* top, std::size_t size) noexcept {
#ifdef CSP_OWN_SWITCH
    (void)size;
    // The frame csp_jump_context pops: control words, six registers, the
    // return address (csp_context_start, which calls csp_fiber_main with
    // the stack 16-byte aligned as the ABI wants).
    auto* frame = reinterpret_cast<std::uint64_t*>(
        (reinterpret_cast<std::uintptr_t>(top) & ~std::uintptr_t{15}) - 80);
    std::uint32_t mxcsr;
    std::uint16_t fcw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fcw));
    frame[0] = mxcsr | (std::uint64_t{fcw} << 32);
    for (int i = 1; i <= 6; ++i) frame[i] = 0;
    frame[7] = reinterpret_cast<std::uint64_t>(&csp_context_start);
    return frame;
#else
    return fc::make_fcontext(top, size, fiber_main);
#endif
}

// resumable: where to resume `to`. A fiber that has not run yet gets its
// first frame now rather than when it was made: a process's stack is then
// first touched when it runs, not also when it starts. (A million processes
// start before the first runs; every touch of a stack is a cache miss and a
// page-table walk, their stacks lying 128 KiB apart.)
inline fc::fcontext_t resumable(Context& to) noexcept {
    if (!to.fctx) [[unlikely]] {
        to.fctx = fresh_context(static_cast<char*>(const_cast<void*>(to.stack_bottom)) + to.stack_size,
                                to.stack_size);
    }
    return to.fctx;
}

// The exception state. The C++ runtime keeps what std::uncaught_exceptions()
// counts and the stack of caught exceptions (std::current_exception(),
// `throw;`) per OS thread, in the Itanium ABI's __cxa_eh_globals, which
// knows nothing of fibers. A fiber that yields or parks while an exception
// unwinds it (a destructor that communicates, a contended lock in an end's
// destructor) or inside a catch block would leave its state to whichever
// fiber runs next on that thread, and take that fiber's state when it
// resumes, perhaps on another thread: the next fiber would see
// uncaught_exceptions() == 1 and its ends, dropped normally, would poison
// (the unwinding rule), and two catch blocks would pop each other's
// exceptions. So every switch puts the thread's state aside in the context
// it leaves and installs the state of the context it resumes. Four loads
// and four stores; the thread's __cxa_eh_globals is found once per thread
// (its address is fixed for the thread's life) and kept in an initial-exec
// thread-local.
//
// The layout is the Itanium C++ ABI's (libstdc++'s unwind-cxx.h and libc++'s
// cxa_exception.h agree): the caught stack's top, then the count. ARM's EHABI
// adds a third field, a propagating-exceptions list, which this does not
// carry, so the build refuses that target until it does.
#if defined(__arm__) && !defined(__aarch64__)
#error "csp keeps the exception state per fiber for the Itanium ABI only (see context.cpp)"
#endif
struct EhGlobals {
    void* caught;
    unsigned uncaught;
};

constinit __attribute__((tls_model("initial-exec"))) thread_local EhGlobals* t_eh = nullptr;

inline EhGlobals& thread_eh() noexcept {
    EhGlobals* g = t_eh;
    if (!g) [[unlikely]]  // (<cxxabi.h> declares the type opaque: the layout is above)
        g = t_eh = reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
    return *g;
}

// exchange_eh: put the thread's exception state aside in `from` (null: a
// fiber that has ended, with nothing in flight), and install `to`'s.
[[gnu::always_inline]] inline void exchange_eh(Context* from, const Context& to) noexcept {
    EhGlobals& g = thread_eh();
    if (from) {
        from->eh_caught = g.caught;
        from->eh_uncaught = g.uncaught;
    }
    g.caught = to.eh_caught;
    g.uncaught = to.eh_uncaught;
}

// SwitchRecord: what one switch hands to its destination, on the source's
// stack (the source is suspended until the destination has read it: nobody
// can resume the source before its arrival work has run).
struct SwitchRecord {
    Context* from;          // the suspended source, to keep its fcontext (null: it ended)
    Context* to;            // the destination (a fresh fiber learns its Context here)
    Arrival arrival;        // work for the destination, and its argument
    void* arrival_arg;
    void* tsan_to_destroy;  // a finished fiber's TSan state
};

// before_switch announces a switch to the sanitizers. `fake_stack_save` is
// where the source keeps its AddressSanitizer state; nullptr when the source
// is a fiber that has ended.
inline void before_switch(void** fake_stack_save, Context& to) noexcept {
#ifdef CSP_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, to.stack_bottom, to.stack_size);
#endif
#ifdef CSP_TSAN
    __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
    (void)fake_stack_save;
    (void)to;
}

// arrive runs first on the destination `self` of every switch: it finishes
// the sanitizers' view of the switch, keeps the suspended source's fcontext,
// and runs the source's arrival work (which may make the source runnable:
// only now is it fully suspended). The record is read before that work runs.
[[gnu::always_inline]] inline void arrive(fc::transfer_t t, Context& self) noexcept {
#ifdef CSP_ASAN
    __sanitizer_finish_switch_fiber(self.asan_fake_stack, nullptr, nullptr);
#endif
    (void)self;
    const auto* rec = static_cast<const SwitchRecord*>(t.data);
    const Arrival arrival = rec->arrival;
    void* arg = rec->arrival_arg;
#ifdef CSP_TSAN
    if (rec->tsan_to_destroy) __tsan_destroy_fiber(rec->tsan_to_destroy);
#endif
    if (rec->from) rec->from->fctx = t.fctx;
    switched();  // (a stretch without waiting ends at every switch: went_on)
    if (arrival) arrival(arg);
}

// give_back: the arrival work of a fiber's final switch, run once its stack
// is left: the stack goes back to the pool (arg: the stack's bottom, kept on
// that stack, read before the pool can hand the stack out again).
void give_back(void* arg) noexcept { pool().give(*static_cast<char* const*>(arg)); }

// fiber_main: the bottom frame of every fiber.
[[noreturn]] void fiber_main(fc::transfer_t t) noexcept {
    Context* self = static_cast<const SwitchRecord*>(t.data)->to;
    arrive(t, *self);
    // entry may end `self` (the process record): keep what is needed after.
    char* stack = static_cast<char*>(const_cast<void*>(self->stack_bottom));
    [[maybe_unused]] void* own_tsan_fiber = self->tsan_fiber;
    Context* next = self->entry(self->entry_arg);
    // This fiber is done: switch to `next` for good; the destination gives
    // this stack back to the pool.
    exchange_eh(nullptr, *next);
    before_switch(nullptr, *next);
    SwitchRecord last{nullptr, next, give_back, &stack, nullptr};
#ifdef CSP_TSAN
    last.tsan_to_destroy = own_tsan_fiber;
#endif
    jump(resumable(*next), &last);
    __builtin_unreachable();
}

}  // namespace

std::size_t stack_size() noexcept {
    static const std::size_t size = [] {
        std::size_t kib = 128;
        if (const char* env = std::getenv("CSP_STACK_SIZE")) {
            long v = std::strtol(env, nullptr, 10);
            if (v >= 16 && v <= 1 << 20) kib = static_cast<std::size_t>(v);
        }
        return kib * 1024;
    }();
    return size;
}

void init_thread_context(Context& c) noexcept {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void* addr = nullptr;
        std::size_t size = 0;
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
        c.stack_bottom = addr;
        c.stack_size = size;
    }
#ifdef CSP_TSAN
    c.tsan_fiber = __tsan_get_current_fiber();
#endif
}

void make_context(Context& c, Entry entry, void* arg) {
    c.stack_bottom = pool().take();
    c.stack_size = stack_size();
    c.entry = entry;
    c.entry_arg = arg;
    c.fctx = nullptr;  // its first frame is written when it first runs (resumable)
    c.eh_caught = nullptr;  // (a pooled record may keep what its last process had)
    c.eh_uncaught = 0;
#ifdef CSP_TSAN
    c.tsan_fiber = __tsan_create_fiber(0);
#endif
}

void discard_context(Context& c) noexcept { pool().give(static_cast<char*>(const_cast<void*>(c.stack_bottom))); }

void switch_context(Context& from, Context& to, Arrival arrival, void* arg) noexcept {
    exchange_eh(&from, to);
    before_switch(&from.asan_fake_stack, to);
    SwitchRecord rec{&from, &to, arrival, arg, nullptr};
    const fc::transfer_t t = jump(resumable(to), &rec);
    // Back in `from`, perhaps on another thread.
    arrive(t, from);
}

#ifndef CSP_ASAN  // (AddressSanitizer reports overflows itself)
namespace {

void on_segv(int sig, siginfo_t* info, void* uc) {
    const Context* c = running_context();
    auto addr = static_cast<const char*>(info->si_addr);
    // The page under a fiber's stack: its guard page if it has one (under a
    // stack without one lies the top of another, which does not fault).
    const char* guard = c ? static_cast<const char*>(c->stack_bottom) - page_size() : nullptr;
    bool overflow = c && addr >= guard && addr < guard + page_size();
#if defined(__x86_64__)
    // Or its stack pointer is under its stack, and the fault near it (a
    // push or a call just under it, a store into a new frame above it): a
    // stack without
    // a guard page overflowed into what lies under it, and faulted further
    // down. (Not a fault of other code whose stack happens to lie lower, a
    // signal handler's, say: its stores fault elsewhere than at its stack
    // pointer, as a rule. The name may be wrong in one narrow window: an
    // overflow inside the switch away from a parking process, which already
    // counts the next one as running.)
    if (c && !overflow && uc) {
        const auto sp = static_cast<std::uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RSP]);
        const auto bottom = reinterpret_cast<std::uintptr_t>(c->stack_bottom);
        const auto at = reinterpret_cast<std::uintptr_t>(addr);
        overflow = sp < bottom && bottom - sp < (std::uintptr_t{1} << 30) && at + 64 * 1024 >= sp &&
                   at <= sp + 1024 * 1024;
    }
#else
    (void)uc;
#endif
    if (overflow) {
        const char* msg = "csp: stack overflow in a fiber process";
        (void)!write(STDERR_FILENO, msg, std::strlen(msg));
        if (const char* name = c->name) {
            (void)!write(STDERR_FILENO, " '", 2);
            (void)!write(STDERR_FILENO, name, std::strlen(name));
            (void)!write(STDERR_FILENO, "'", 1);
        }
        log_fatal(" (raise CSP_STACK_SIZE, in KiB; default 128)");
    }
    // Not ours: let the default action happen on return.
    signal(sig, SIG_DFL);
}

}  // namespace
#endif

void install_overflow_handler() noexcept {
#ifndef CSP_ASAN
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
    });
    // Each worker thread needs an alternate stack: the faulting one is full.
    constexpr std::size_t kAltSize = 64 * 1024;
    stack_t ss{};
    ss.ss_sp = std::malloc(kAltSize);
    ss.ss_size = kAltSize;
    if (ss.ss_sp) sigaltstack(&ss, nullptr);
#endif
}

}  // namespace csp::runtime

#ifdef CSP_OWN_SWITCH
void csp_fiber_main(boost::context::detail::transfer_t t) noexcept {
    csp::runtime::fiber_main(t);
}
#endif

namespace csp::runtime {

void reset_stacks_after_fork() noexcept {
    // Another thread of the parent may have held the pool's lock at the
    // fork. The child starts a pool of its own; the parent's stacks it
    // inherited (private copies) are simply never reused.
    g_pool = new StackPool(pool());
}

}  // namespace csp::runtime
