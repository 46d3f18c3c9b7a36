// arena.hpp: the shared arena.
//
// At runtime start, before any fork, one large anonymous MAP_SHARED mapping is
// reserved (pages are committed as they are touched). Forked children inherit
// it at the same address, so a pointer into the arena means the same object in
// every OS process of the network. Everything a partner in another OS process
// may touch lives here: channel state, waiter records, selection words,
// buffers, parkers.
//
// Each OS process allocates from heaps of its own, so that one which dies in
// the middle of an allocation takes only its own heap with it (arena.cpp).
// Memory may be freed from any OS process.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace csp::runtime {

// arena_allocate returns `size` bytes aligned to `align` inside the shared
// arena; throws std::bad_alloc when the arena is exhausted.
void* arena_allocate(std::size_t size, std::size_t align = alignof(std::max_align_t));

// arena_free gives back memory from arena_allocate (nullptr is ignored), from
// any OS process.
void arena_free(void* p) noexcept;

// arena_in_use: the bytes of the arena allocated now, bookkeeping included
// (for tests that check that something does not leak).
std::size_t arena_in_use() noexcept;

// HeapList: the heaps one OS process allocates from, kept in the arena (in
// the record its parent made for it) so that the parent can take them back
// when it has ended.
struct HeapList {
    std::atomic<std::uint32_t> first{0};  // (arena.cpp's own encoding)
};

// arena_start_child: in a forked child, before anything allocates: from now
// on this OS process allocates from heaps of its own, listed in *mine.
void arena_start_child(HeapList* mine) noexcept;

// arena_take_back: in the parent, once the child `pid` that allocated from
// *theirs has ended (and before it is reaped, so that its pid cannot be
// anybody else's yet): its heaps go back for reuse, with what they still
// hold, except one it died in the middle of using, which is left as it is.
void arena_take_back(HeapList* theirs, std::uint32_t pid) noexcept;

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
