// pools.cpp: storage for the records made and freed by the million: parkers,
// tasks, and the size-class pools behind pooled_allocate (a process's call).
//
// Owns: the free lists of parkers (arena storage) and tasks (heap), and the
// 16-byte size classes of pooled_allocate. Must hold: storage on a list holds
// no live object; a parker goes back only when its last reference goes
// (release_parker); a forked child starts with empty lists (the parent's free
// parkers lie in the shared arena and stay the parent's to reuse).
//
// Why pools: a network that starts a million processes makes and frees a
// million of each, and the arena's general allocator (a best-fit tree under a
// process-shared mutex) alone cost about a quarter of bench/spawn's
// instructions; glibc's malloc, once its thread cache of 7 blocks per size
// runs out, a few hundred instructions a pair.
#include "runtime/scheduler.hpp"

#include "runtime/arena.hpp"
#include "runtime/free_list.hpp"
#include "runtime/sanitizers.hpp"

#include <cstddef>
#include <cstring>
#include <new>

namespace csp::runtime {
namespace {

FreeList g_free_parkers;  // storage in the arena
FreeList g_free_tasks;    // on the heap

// The pools behind pooled_allocate: class k holds blocks of 16 (k + 1) bytes.
constexpr std::size_t kPoolGrain = 16;
constexpr std::size_t kPoolClasses = kPooledMax / kPoolGrain;
FreeList g_pools[kPoolClasses];

std::size_t pool_class(std::size_t size) noexcept { return (size + kPoolGrain - 1) / kPoolGrain - 1; }

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

Parker* new_parker(ProcessRecord* owner, bool is_thread) {
    void* storage = g_free_parkers.take();
    // A reused parker goes on counting waits where the last process left
    // off: a wait is named by (parker, epoch) by late wakers and rescues
    // (runtime::rescue), which must never mistake a new wait for an old one.
    std::uint64_t epochs = 0;
    if (storage) std::memcpy(&epochs, static_cast<char*>(storage) + offsetof(Parker, epochs_done), sizeof epochs);
    Parker* p = storage ? ::new (storage) Parker : arena_new<Parker>();
    p->selection.store(epochs << 32, std::memory_order_relaxed);
    p->owner = owner;
    p->home = g_local_inbox;
    p->is_thread = is_thread;
    return p;
}

void release_parker(Parker* p) noexcept {
    if (p->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    arena_free(p->upper_block);
    // (Kept where the free list's link does not reach: see new_parker.)
    p->epochs_done = (p->selection.load(std::memory_order_relaxed) >> 32) + 1;
    p->~Parker();
    g_free_parkers.give(p);
}

Task* new_task() {
    void* storage = g_free_tasks.take();
    return storage ? ::new (storage) Task : new Task;
}

void free_task(Task* t) noexcept {
    t->~Task();
    g_free_tasks.give(t);
}

void discard_task(Task* t) noexcept {
    discard_context(t->context);
    free_task(t);
}

void* take_free_parkers() noexcept { return g_free_parkers.take_all(); }

void adopt_free_parkers(void* chain) noexcept { g_free_parkers.give_all(chain); }

void reset_pools_after_fork() noexcept {
    // New, empty lists over the old objects, whose locks a thread of the
    // parent may have held at the fork (see fork.cpp). What the old lists
    // held is lost to the child: the parker storage is the parent's, the
    // heap blocks a small leak in a short-lived copy.
    ::new (&g_free_parkers) FreeList;
    ::new (&g_free_tasks) FreeList;
    for (FreeList& pool : g_pools) ::new (&pool) FreeList;
}

}  // namespace csp::runtime
