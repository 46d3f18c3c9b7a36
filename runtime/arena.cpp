// arena.cpp: the shared mapping and its heaps.
//
// The mapping is made once, before any fork, and never unmapped (parkers and
// channels may be freed during exit). Past a header it is cut into sections
// of kSection bytes. A heap is a run of sections with Boost.Interprocess's
// best-fit allocator (rbtree_best_fit) laid over it, rather than a
// hand-written one; what is written here is only how heaps are shared out:
//   - each OS process allocates from heaps of its own (a list kept in the
//     arena, in its HeapList), under a lock only its own threads take;
//   - memory freed by another OS process is pushed on the heap's
//     remote_free stack (lock-free: push only, the owner takes the whole
//     stack) and given back to the allocator by the owner;
//   - heaps that no OS process owns wait on a lock-free stack (tagged
//     against ABA); fresh sections are cut from the end with one fetch_add.
// Why: with one heap and one process-shared mutex, an OS process killed
// while it held that mutex left every other one blocked for ever. Now such
// a process takes down only its own heap: its parent, reaping it, gives its
// heaps to later children (what they still hold stays allocated, and may be
// read and freed as before), except one whose lock it died holding, whose
// state may be half changed: that one is left as it is. Nothing a survivor
// does ever waits for a lock of another OS process's heap.
#include "runtime/arena.hpp"

#include "runtime/log.hpp"
#include "runtime/shared_lock.hpp"
#include "runtime/spin_lock.hpp"

#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/sync/mutex_family.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <sys/mman.h>

namespace csp::runtime {
namespace {

namespace bip = boost::interprocess;

// The allocator of one heap. Raw pointers: the arena has the same address in
// every OS process. No mutex of its own: Heap::lock guards it.
using Allocator = bip::rbtree_best_fit<bip::null_mutex_family, void*>;

constexpr std::size_t kSection = std::size_t{64} << 20;

// Heap: at the start of its first section.
struct Heap {
    // Taken by the owner's threads only. Its holder, once the owner has
    // died, says whether it died inside the allocator.
    SharedLock lock{nullptr, false};
    std::atomic<std::uint32_t> owner{0};  // the pid allocating from it; 0 while nobody does
    std::uint32_t sections = 0;           // its length
    // The next heap of the owner's list, or of the free stack (a section
    // number + 1; 0: none).
    std::atomic<std::uint32_t> next{0};
    std::atomic<void*> remote_free{nullptr};  // freed elsewhere; a block's first word links them
    std::atomic<std::int64_t> used{0};        // bytes allocated (arena_in_use)

    Allocator* allocator() noexcept;
};
constexpr std::size_t kAllocatorAt = (sizeof(Heap) + 63) / 64 * 64;
Allocator* Heap::allocator() noexcept {
    return reinterpret_cast<Allocator*>(reinterpret_cast<char*>(this) + kAllocatorAt);
}

// Header: at the start of the mapping, in its first section (which holds no
// heap), followed by heap_of.
struct Header {
    std::atomic<std::uint32_t> next_fresh{0};  // the first section never handed out
    std::uint32_t sections = 0;
    std::atomic<std::uint64_t> free_top{0};    // (tag << 32) | (section + 1) of the free stack's top
    HeapList root;                             // the first OS process's heaps
};

// What this OS process knows of the arena (private; a forked child has a
// copy, and arena_start_child makes it its own).
struct Arena {
    char* base = nullptr;
    std::size_t size = 0;
    Header* header = nullptr;
    std::uint32_t* heap_of = nullptr;  // per section: the first section of its heap
    char* sections = nullptr;          // where section 0 starts
    HeapList* mine = nullptr;
    std::atomic<Heap*> current{nullptr};  // the heap that served last
    SpinLock growing;                     // one thread at a time adds a heap to the list

    Arena() {
        // Reserve a large range; MAP_NORESERVE keeps untouched pages free.
        // Fall back to smaller reservations where the kernel refuses (under
        // ThreadSanitizer, 1 TiB is the most its layout takes).
        for (std::size_t gib = 1024; gib >= 1; gib /= 2) {
            size = gib << 30;
            void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
            if (m != MAP_FAILED) {
                base = static_cast<char*>(m);
                break;
            }
        }
        if (!base) log_fatal("csp: cannot map the shared arena");
        header = ::new (base) Header;
        heap_of = reinterpret_cast<std::uint32_t*>(base + (sizeof(Header) + 63) / 64 * 64);
        sections = base + kSection;
        header->sections = static_cast<std::uint32_t>(size / kSection - 1);
        if (reinterpret_cast<char*>(heap_of + header->sections) > sections) {
            log_fatal("csp: the shared arena's header does not fit its first section");
        }
        mine = &header->root;
    }

    Heap* heap_at(std::uint32_t section) noexcept {
        return reinterpret_cast<Heap*>(sections + std::size_t{section} * kSection);
    }
    std::uint32_t section_of(const Heap* h) noexcept {
        return static_cast<std::uint32_t>((reinterpret_cast<const char*>(h) - sections) / kSection);
    }
    Heap* heap_holding(const void* p) noexcept {
        const auto s = static_cast<std::size_t>(static_cast<const char*>(p) - sections) / kSection;
        return heap_at(heap_of[s]);
    }

    void push_free(Heap* h) noexcept;
    Heap* pop_free() noexcept;
    Heap* fresh(std::size_t bytes);
    Heap* add_heap(std::size_t bytes);
    void* allocate(std::size_t size, std::size_t align);
    void free(void* p) noexcept;
};

Arena& arena() {
    // Never destroyed: parkers and channels may be freed during exit, after
    // static destructors have begun.
    static Arena* a = new Arena;
    return *a;
}

// ---- one heap (its lock held) ------------------------------------------------

// Runs `f` on h's allocator and counts the change in what is allocated.
template <class F>
auto counted(Heap* h, F f) noexcept {
    Allocator* a = h->allocator();
    const std::size_t before = a->get_free_memory();
    auto result = f(a);
    h->used.fetch_add(static_cast<std::int64_t>(before) - static_cast<std::int64_t>(a->get_free_memory()),
                      std::memory_order_relaxed);
    return result;
}

// take_remote: give back what other OS processes freed.
void take_remote(Heap* h) noexcept {
    if (!h->remote_free.load(std::memory_order_relaxed)) return;
    void* list = h->remote_free.exchange(nullptr, std::memory_order_acquire);
    counted(h, [list](Allocator* a) mutable {
        while (list) {
            void* next = *static_cast<void**>(list);
            a->deallocate(list);
            list = next;
        }
        return 0;
    });
}

void* try_heap(Heap* h, std::size_t size, std::size_t align) noexcept {
    Locked<SharedLock> hold(h->lock);
    take_remote(h);
    return counted(h, [&](Allocator* a) {
        return align <= alignof(std::max_align_t) ? a->allocate(size) : a->allocate_aligned(size, align);
    });
}

// ---- heaps -------------------------------------------------------------------

void Arena::push_free(Heap* h) noexcept {
    const std::uint32_t mark = section_of(h) + 1;
    std::uint64_t top = header->free_top.load(std::memory_order_relaxed);
    for (;;) {
        h->next.store(static_cast<std::uint32_t>(top), std::memory_order_relaxed);
        const std::uint64_t tag = (top >> 32) + 1;
        if (header->free_top.compare_exchange_weak(top, (tag << 32) | mark, std::memory_order_release,
                                                   std::memory_order_relaxed)) {
            return;
        }
    }
}

Heap* Arena::pop_free() noexcept {
    std::uint64_t top = header->free_top.load(std::memory_order_acquire);
    for (;;) {
        const auto mark = static_cast<std::uint32_t>(top);
        if (mark == 0) return nullptr;
        Heap* h = heap_at(mark - 1);
        // (A stale read of `next` is harmless: the tag makes the CAS fail.)
        const std::uint64_t next = h->next.load(std::memory_order_relaxed);
        const std::uint64_t tag = (top >> 32) + 1;
        if (header->free_top.compare_exchange_weak(top, (tag << 32) | next, std::memory_order_acquire,
                                                   std::memory_order_acquire)) {
            return h;
        }
    }
}

Heap* Arena::fresh(std::size_t bytes) {
    const std::size_t need = kAllocatorAt + Allocator::get_min_size(0) + bytes + 4096;
    const auto count = static_cast<std::uint32_t>((need + kSection - 1) / kSection);
    const std::uint32_t first = header->next_fresh.fetch_add(count, std::memory_order_relaxed);
    if (first + std::uint64_t{count} > header->sections) throw std::bad_alloc();
    for (std::uint32_t i = first; i < first + count; ++i) heap_of[i] = first;
    Heap* h = ::new (heap_at(first)) Heap;
    h->sections = count;
    ::new (h->allocator()) Allocator(std::size_t{count} * kSection - kAllocatorAt, 0);
    return h;
}

// add_heap: a heap for this OS process with room for `bytes` (a free one,
// else fresh sections), put first on its list.
Heap* Arena::add_heap(std::size_t bytes) {
    Heap* h = bytes <= kSection / 2 ? pop_free() : nullptr;
    if (!h) h = fresh(bytes);
    h->owner.store(g_self_pid, std::memory_order_relaxed);
    h->next.store(mine->first.load(std::memory_order_relaxed), std::memory_order_relaxed);
    mine->first.store(section_of(h) + 1, std::memory_order_release);
    return h;
}

void* Arena::allocate(std::size_t size, std::size_t align) {
    Heap* last = current.load(std::memory_order_relaxed);
    if (last) {
        if (void* p = try_heap(last, size, align)) return p;
    }
    for (std::uint32_t s = mine->first.load(std::memory_order_acquire); s;) {
        Heap* h = heap_at(s - 1);
        s = h->next.load(std::memory_order_relaxed);
        if (h == last) continue;
        if (void* p = try_heap(h, size, align)) {
            current.store(h, std::memory_order_relaxed);
            return p;
        }
    }
    Heap* h;
    {
        Locked<SpinLock> hold(growing);
        h = add_heap(size + align);
    }
    void* p = try_heap(h, size, align);
    if (!p) throw std::bad_alloc();
    current.store(h, std::memory_order_relaxed);
    return p;
}

void Arena::free(void* p) noexcept {
    Heap* h = heap_holding(p);
    if (h->owner.load(std::memory_order_relaxed) == g_self_pid) {
        Locked<SharedLock> hold(h->lock);
        take_remote(h);
        counted(h, [p](Allocator* a) {
            a->deallocate(p);
            return 0;
        });
        return;
    }
    // Another OS process's heap: its owner gives it back.
    void* top = h->remote_free.load(std::memory_order_relaxed);
    do {
        *static_cast<void**>(p) = top;
    } while (!h->remote_free.compare_exchange_weak(top, p, std::memory_order_release, std::memory_order_relaxed));
}

}  // namespace

void* arena_allocate(std::size_t size, std::size_t align) { return arena().allocate(size, align); }

void arena_free(void* p) noexcept {
    if (p) arena().free(p);
}

std::size_t arena_in_use() noexcept {
    Arena& a = arena();
    const std::uint32_t end = std::min(a.header->next_fresh.load(std::memory_order_acquire), a.header->sections);
    std::int64_t total = 0;
    for (std::uint32_t s = 0; s < end;) {
        Heap* h = a.heap_at(s);
        total += h->used.load(std::memory_order_relaxed);
        s += std::max<std::uint32_t>(1, h->sections);  // (0: a heap still being made)
    }
    return static_cast<std::size_t>(std::max<std::int64_t>(0, total));
}

void arena_start_child(HeapList* mine) noexcept {
    Arena& a = arena();
    a.mine = mine;
    a.current.store(nullptr, std::memory_order_relaxed);
    ::new (&a.growing) SpinLock;  // (a thread of the parent may have held it at the fork)
}

void arena_take_back(HeapList* theirs, std::uint32_t pid) noexcept {
    Arena& a = arena();
    for (std::uint32_t s = theirs->first.exchange(0, std::memory_order_acquire); s;) {
        Heap* h = a.heap_at(s - 1);
        s = h->next.load(std::memory_order_relaxed);
        // (Nobody's, even if the pid comes back: frees go to remote_free.)
        h->owner.store(0, std::memory_order_relaxed);
        if (h->lock.holder() == pid) {
            logger().debug("OS process {} died inside the allocator of an arena heap; the heap is left as it is",
                           pid);
            continue;
        }
        a.push_free(h);
    }
}

}  // namespace csp::runtime
