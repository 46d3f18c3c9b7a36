// context.cpp: fiber stacks, the context switch, and the sanitizer
// annotations that follow it.
//
// Stacks. A stack with a guard page costs two kernel mappings, and the kernel
// allows about 65 000 per process, while a network may hold a million
// processes. So the first kGuardedBudget stacks get a guard page (an
// overflow then faults on it and is reported by name); beyond that, stacks
// are carved from slabs of kSlabStacks (one mapping per slab) and have none.
// Freed stacks are pooled and reused, pages and all: giving pages back
// (madvise) cost more than the rest of a process's start and end together.
// So resident stack memory stays at the high-water mark of live processes.
#include "runtime/context.hpp"

#include "runtime/log.hpp"
#include "runtime/spin_lock.hpp"

#include <boost/context/stack_context.hpp>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CSP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CSP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CSP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSP_TSAN 1
#endif
#endif

#ifdef CSP_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CSP_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace csp::runtime {
namespace {

constexpr std::size_t kGuardedBudget = 16384;
constexpr std::size_t kSlabStacks = 64;

std::size_t page_size() noexcept {
    static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

struct Stack {
    char* bottom;   // lowest usable address (just above the guard page, if any)
    bool guarded;
};

class StackPool {
public:
    Stack take() {
        {
            Locked<SpinLock> hold(lock_);
            if (!free_.empty()) {
                Stack s = free_.back();
                free_.pop_back();
                return s;
            }
        }
        return fresh();
    }

    void give(Stack s) noexcept {
        Locked<SpinLock> hold(lock_);
        free_.push_back(s);
    }

private:
    Stack fresh() {
        const std::size_t size = stack_size();
        const std::size_t page = page_size();
        if (guarded_.fetch_add(1, std::memory_order_relaxed) < kGuardedBudget) {
            void* p = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (p != MAP_FAILED) {
                if (mprotect(p, page, PROT_NONE) == 0) {
                    return {static_cast<char*>(p) + page, true};
                }
                munmap(p, size + page);
            }
        }
        Locked<SpinLock> hold(lock_);
        if (slab_left_ == 0) {
            void* p = mmap(nullptr, size * kSlabStacks, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
            if (p == MAP_FAILED) throw std::bad_alloc();
            slab_ = static_cast<char*>(p);
            slab_left_ = kSlabStacks;
            if (!warned_) {
                warned_ = true;
                logger().info("{} guarded fiber stacks in use; further stacks have no guard page",
                              kGuardedBudget);
            }
        }
        --slab_left_;
        return {slab_ + slab_left_ * size, false};
    }

    SpinLock lock_;
    std::vector<Stack> free_;
    std::atomic<std::size_t> guarded_{0};
    char* slab_ = nullptr;
    std::size_t slab_left_ = 0;
    bool warned_ = false;
};

StackPool* g_pool = nullptr;

StackPool& pool() {
    static StackPool* p = g_pool = new StackPool;  // never destroyed: fibers may end during exit
    (void)p;
    return *g_pool;
}

// The Boost.Context stack allocator over the pool.
struct PooledStack {
    Context* context;
    bool guarded = false;  // remembered for deallocate (Boost keeps this object)
    boost::context::stack_context allocate() {
        Stack s = pool().take();
        guarded = s.guarded;
        boost::context::stack_context sc;
        sc.size = stack_size();
        sc.sp = s.bottom + sc.size;
        context->stack_bottom = s.bottom;
        context->stack_size = sc.size;
        context->guard_page = s.guarded ? s.bottom - page_size() : nullptr;
        return sc;
    }
    void deallocate(boost::context::stack_context& sc) noexcept {
        pool().give({static_cast<char*>(sc.sp) - sc.size, guarded});
    }
};

// Per-thread switch state. A fiber may leave a switch on another thread than
// it entered it, so a thread-local address computed before a switch is stale
// after it: every access goes through this accessor, which the compiler
// cannot fold across the switch.
struct ThreadSwitchState {
    const Context* running = nullptr;  // the context running on this thread
    Context* leaving = nullptr;        // the context being suspended, to get its handle
    Arrival arrival = nullptr;         // work for the destination, and its argument
    void* arrival_arg = nullptr;
    void* tsan_to_destroy = nullptr;   // a finished fiber's TSan state
};
__attribute__((tls_model("initial-exec"))) thread_local ThreadSwitchState t_switch;

__attribute__((noinline)) ThreadSwitchState& ts() noexcept {
    asm volatile("");
    return t_switch;
}

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
// the sanitizers' view of the switch, keeps the suspended source's handle,
// and runs the source's arrival work (which may make the source runnable:
// only now is it fully suspended).
void arrive(boost::context::fiber&& source, Context& self) noexcept {
#ifdef CSP_ASAN
    __sanitizer_finish_switch_fiber(self.asan_fake_stack, nullptr, nullptr);
#endif
    ThreadSwitchState& state = ts();
#ifdef CSP_TSAN
    if (state.tsan_to_destroy) {
        __tsan_destroy_fiber(state.tsan_to_destroy);
        state.tsan_to_destroy = nullptr;
    }
#endif
    state.running = &self;
    if (state.leaving) state.leaving->fiber = std::move(source);
    const Arrival arrival = state.arrival;
    void* arg = state.arrival_arg;
    state.leaving = nullptr;
    state.arrival = nullptr;
    if (arrival) arrival(arg);
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
    ts().running = &c;
}

void make_context(Context& c, Entry entry, void* arg) {
#ifdef CSP_TSAN
    c.tsan_fiber = __tsan_create_fiber(0);
#endif
    Context* self = &c;
    c.fiber = boost::context::fiber(
        std::allocator_arg, PooledStack{self},
        [self, entry, arg](boost::context::fiber&& source) -> boost::context::fiber {
            arrive(std::move(source), *self);
            [[maybe_unused]] void* own_tsan_fiber = self->tsan_fiber;
            // entry may free `self` (the process record): not used after this.
            Context* next = entry(arg);
            // This fiber is done: switch to `next` for good. Boost frees the
            // stack on the destination (PooledStack::deallocate), and there
            // is no handle of ours to keep.
            before_switch(nullptr, *next);
            ThreadSwitchState& state = ts();
#ifdef CSP_TSAN
            state.tsan_to_destroy = own_tsan_fiber;
#endif
            state.leaving = nullptr;
            state.arrival = nullptr;
            return std::move(next->fiber);
        });
}

void switch_context(Context& from, Context& to, Arrival arrival, void* arg) noexcept {
    before_switch(&from.asan_fake_stack, to);
    ThreadSwitchState& state = ts();
    state.leaving = &from;
    state.arrival = arrival;
    state.arrival_arg = arg;
    boost::context::fiber source = std::move(to.fiber).resume();
    // Back in `from`, perhaps on another thread.
    arrive(std::move(source), from);
}

namespace {

void on_segv(int sig, siginfo_t* info, void*) {
    const Context* c = t_switch.running;
    auto addr = static_cast<const char*>(info->si_addr);
    if (c && c->guard_page && addr >= c->guard_page &&
        addr < c->guard_page + page_size()) {
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

namespace csp::runtime {

void reset_stacks_after_fork() noexcept {
    // Another thread of the parent may have held the pool's lock at the
    // fork. The child starts a pool of its own; the parent's stacks it
    // inherited (private copies) are simply never reused.
    (void)pool();
    g_pool = new StackPool;
}

}  // namespace csp::runtime
