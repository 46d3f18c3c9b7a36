// free_list.hpp: storage for objects of one kind, kept for reuse.
//
// A network may start and end a million processes, each with a few records
// of fixed size; a general allocator costs hundreds of instructions per
// record (and glibc's, freeing them in bulk, consolidates again and again).
// A FreeList keeps freed storage on an intrusive stack under a spin lock
// and hands it out again. The storage stays the caller's kind of memory (the
// shared arena, the heap); the list never gives it back.
#pragma once

#include "runtime/spin_lock.hpp"

namespace csp::runtime {

class FreeList {
public:
    // take: storage given back earlier, or nullptr (then allocate afresh).
    void* take() noexcept {
        Locked<SpinLock> hold(lock_);
        Node* n = head_;
        if (n) head_ = n->next;
        return n;
    }
    // give: storage of at least a pointer's size whose object has been
    // destroyed; its first bytes now hold the list's link.
    void give(void* p) noexcept {
        auto* n = static_cast<Node*>(p);
        Locked<SpinLock> hold(lock_);
        n->next = head_;
        head_ = n;
    }

    // take_all: everything on the list, as a chain linked through each
    // piece's first bytes, for give_all; the list is left empty.
    void* take_all() noexcept {
        Locked<SpinLock> hold(lock_);
        Node* n = head_;
        head_ = nullptr;
        return n;
    }
    // give_all: a chain from take_all, added to the list.
    void give_all(void* chain) noexcept {
        if (!chain) return;
        auto* first = static_cast<Node*>(chain);
        Node* last = first;
        while (last->next) last = last->next;
        Locked<SpinLock> hold(lock_);
        last->next = head_;
        head_ = first;
    }

private:
    struct Node {
        Node* next;
    };
    SpinLock lock_;
    Node* head_ = nullptr;
};

}  // namespace csp::runtime
