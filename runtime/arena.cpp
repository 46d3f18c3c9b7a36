// arena.cpp: the shared mapping and its allocator (Boost.Interprocess's
// rbtree best fit under a process-shared mutex), made once, before any
// fork, and never unmapped: parkers and channels may be freed during exit.

#include "runtime/arena.hpp"

#include "runtime/log.hpp"

#include <boost/interprocess/managed_external_buffer.hpp>

#include <cstdint>
#include <cstdlib>
#include <sys/mman.h>

namespace csp::runtime {
namespace {

namespace bip = boost::interprocess;

// managed_external_buffer's default algorithm uses a null mutex: ours is
// shared by every thread (and, after fork, every OS process), so take the
// process-shared mutex family.
using SharedHeap = bip::basic_managed_external_buffer<
    char, bip::rbtree_best_fit<bip::mutex_family>, bip::iset_index>;

struct Arena {
    void* base = nullptr;
    std::size_t size = 0;
    SharedHeap* heap = nullptr;

    Arena() {
        // Reserve a large range; MAP_NORESERVE keeps untouched pages free.
        // Fall back to smaller reservations where the kernel refuses.
        for (std::size_t gib = 64; gib >= 1; gib /= 2) {
            size = gib << 30;
            base = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (base != MAP_FAILED) break;
            base = nullptr;
        }
        if (!base) {
            log_fatal("csp: cannot map the shared arena");
        }
        // The managed buffer object itself is private bookkeeping, but all
        // of its state (free tree, mutex) lives at the start of the mapping.
        heap = new SharedHeap(bip::create_only, base, size);
    }
};

Arena& arena() {
    // Never destroyed: parkers and channels may be freed during exit, after
    // static destructors have begun.
    static Arena* a = new Arena;
    return *a;
}

}  // namespace

void* arena_allocate(std::size_t size, std::size_t align) {
    Arena& a = arena();
    void* p = align <= alignof(std::max_align_t)
                  ? a.heap->allocate(size, std::nothrow)
                  : a.heap->allocate_aligned(size, align, std::nothrow);
    if (!p) throw std::bad_alloc();
    return p;
}

void arena_free(void* p) noexcept {
    if (p) arena().heap->deallocate(p);
}

std::size_t arena_in_use() noexcept {
    Arena& a = arena();
    return a.size - a.heap->get_free_memory();
}

}  // namespace csp::runtime
