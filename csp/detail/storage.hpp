// detail/storage.hpp: a value constructed in raw storage, taken out once.
#pragma once

#include <new>
#include <utility>

namespace csp::detail {

// take_out<T>(storage): moves the T that something constructed in `storage`
// (a channel read, a choice, an unpacked result) out, and destroys it there,
// also when the move throws.
template <class T>
T take_out(void* storage) {
    T* value = std::launder(static_cast<T*>(storage));
    struct Destroy {
        T* p;
        ~Destroy() { p->~T(); }
    } destroy{value};
    return std::move(*value);
}

}  // namespace csp::detail
