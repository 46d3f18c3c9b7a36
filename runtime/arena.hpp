// arena.hpp: the shared arena.
//
// At runtime start, before any fork, one large anonymous MAP_SHARED mapping is
// reserved (pages are committed as they are touched). Forked children inherit
// it at the same address, so a pointer into the arena means the same object in
// every OS process of the network. Everything a partner in another OS process
// may touch lives here: channel state, waiter records, selection words,
// buffers, parkers.
//
// The allocator is Boost.Interprocess's managed memory (rbtree best fit with a
// process-shared mutex) laid over the mapping, rather than a hand-written one.
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace csp::runtime {

// arena_allocate returns `size` bytes aligned to `align` inside the shared
// arena; throws std::bad_alloc when the arena is exhausted.
void* arena_allocate(std::size_t size, std::size_t align = alignof(std::max_align_t));

// arena_free gives back memory from arena_allocate (nullptr is ignored).
void arena_free(void* p) noexcept;

// arena_in_use: the bytes of the arena allocated now, bookkeeping included
// (for tests that check that something does not leak).
std::size_t arena_in_use() noexcept;

// arena_new / arena_delete construct and destroy one object in the arena.
template <class T, class... Args>
T* arena_new(Args&&... args) {
    void* p = arena_allocate(sizeof(T), alignof(T));
    try {
        return ::new (p) T(std::forward<Args>(args)...);
    } catch (...) {
        arena_free(p);
        throw;
    }
}

template <class T>
void arena_delete(T* p) noexcept {
    if (!p) return;
    p->~T();
    arena_free(p);
}

}  // namespace csp::runtime
