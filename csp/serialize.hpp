// serialize.hpp: how values cross OS processes.
//
// Within one OS process a value is moved from writer to reader. To reach
// another OS process it is packed into a parcel in the shared arena: memcpy
// for a trivially copyable type, the count and the elements for a vector of
// numbers or a string (Contiguous, in cereal's bytes for it), otherwise
// cereal's binary archive (the
// Debian package libcereal-dev: a well-kept serializer for the standard
// containers, strings, tuples, variants and optionals, and for user types
// that give a `serialize(Archive&)` member or free function).
#pragma once

#include "channels/crossing.hpp"

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <cstring>
#include <exception>
#include <istream>
#include <memory>
#include <new>
#include <ostream>
#include <streambuf>
#include <string>
#include <type_traits>
#include <vector>

namespace csp {

// Transferable<T>: values of T can cross OS processes.
template <class T>
concept Transferable =
    std::is_trivially_copyable_v<T> ||
    (std::is_default_constructible_v<T> &&
     cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
     cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value);

namespace detail {

using channels::ParcelReader;
using channels::ParcelWriter;

void log_pack_failure(const char* type, const char* what) noexcept;
// note_pack_failure: packing a value for a writer on this thread threw `e`
// (logged, and kept for the writer: take_pack_failure).
void note_pack_failure(const char* type, std::exception_ptr e) noexcept;
std::exception_ptr take_pack_failure() noexcept;

// Contiguous<T>: a std::vector of arithmetic elements (not bool) or a
// std::basic_string, with the standard allocator: packed and unpacked here
// in one pass over its elements each, into the very bytes cereal's binary
// archive writes for it (a uint64_t count, then the elements), so a value
// packed either way unpacks either way. (cereal's load sizes the container
// first, which zeroes every element, then copies through a stream: a pass
// over memory more than needed, for a 1 MiB vector crossing ranks. And the
// parcel keeps room after the bytes for a transport's header,
// kParcelTailRoom, so that libcsp-mpi sends from it as it is.)
template <class T>
struct Contiguous : std::false_type {};
template <class U>
struct Contiguous<std::vector<U>>
    : std::bool_constant<std::is_arithmetic_v<U> && !std::is_same_v<U, bool> && alignof(U) <= 8> {};
template <class C>
struct Contiguous<std::basic_string<C>> : std::bool_constant<std::is_arithmetic_v<C> && alignof(C) <= 8> {};

template <class T>
channels::Parcel* pack_contiguous(const T& value) {
    using U = typename T::value_type;
    const std::uint64_t count = value.size();
    const std::size_t bytes = sizeof count + value.size() * sizeof(U);
    channels::Parcel* p = channels::parcel_new(bytes, bytes + channels::kParcelTailRoom);
    std::memcpy(p->data(), &count, sizeof count);
    if (count) std::memcpy(p->data() + sizeof count, value.data(), value.size() * sizeof(U));
    return p;
}

// contiguous_elements: ValueOps::elements for a Contiguous T.
template <class T>
const void* contiguous_elements(const void* src, std::uint64_t* count, std::size_t* bytes) noexcept {
    const T& value = *static_cast<const T*>(src);
    *count = value.size();
    *bytes = value.size() * sizeof(typename T::value_type);
    return value.data();
}

// unpack_contiguous: the T in p, made in `dst` (raw storage); false if p
// does not hold one.
template <class T>
bool unpack_contiguous(channels::Parcel* p, void* dst) {
    using U = typename T::value_type;
    std::uint64_t count = 0;
    if (p->size < sizeof count) return false;
    std::memcpy(&count, p->data(), sizeof count);
    if (count != (p->size - sizeof count) / sizeof(U) || p->size != sizeof count + count * sizeof(U)) return false;
    // (The elements lie 8 bytes into a parcel's bytes, which are
    // 8-aligned: aligned for a U, alignof(U) <= 8.)
    static_assert(sizeof(channels::Parcel) % 8 == 0 && alignof(channels::Parcel) >= 8);
    const U* first = reinterpret_cast<const U*>(p->data() + sizeof count);
    ::new (dst) T(first, first + count);  // (one copy: no zeroing first)
    return true;
}

template <class T>
channels::Parcel* pack_value(const void* src) noexcept {
    try {
        if constexpr (std::is_trivially_copyable_v<T>) {
            channels::Parcel* p = channels::parcel_new(sizeof(T));
            std::memcpy(p->data(), src, sizeof(T));
            return p;
        } else if constexpr (Contiguous<T>::value) {
            return pack_contiguous(*static_cast<const T*>(src));
        } else {
            ParcelWriter buf;
            {
                std::ostream os(&buf);
                cereal::BinaryOutputArchive archive(os);
                archive(*static_cast<const T*>(src));
            }
            return buf.release();
        }
    } catch (...) {
        note_pack_failure(typeid(T).name(), std::current_exception());
        return nullptr;
    }
}

// unpacked: runs `unpack` (which reads a parcel into place); false, and
// logged, if it throws.
template <class T, class F>
bool unpacked(F&& unpack) noexcept {
    try {
        return unpack();
    } catch (const std::exception& e) {
        log_pack_failure(typeid(T).name(), e.what());
    } catch (...) {
        log_pack_failure(typeid(T).name(), "an exception not derived from std::exception");
    }
    return false;
}

// read_parcel: the value cereal wrote into p, into `value`.
template <class T>
void read_parcel(channels::Parcel* p, T& value) {
    ParcelReader buf(p);
    std::istream is(&buf);
    cereal::BinaryInputArchive archive(is);
    archive(value);
}

template <class T>
bool unpack_value(channels::Parcel* p, void* dst) noexcept {
    return unpacked<T>([&] {
        if constexpr (std::is_trivially_copyable_v<T>) {
            if (p->size != sizeof(T)) return false;
            std::memcpy(dst, p->data(), sizeof(T));
        } else if constexpr (Contiguous<T>::value) {
            return unpack_contiguous<T>(p, dst);
        } else {
            T value{};
            read_parcel(p, value);
            ::new (dst) T(std::move(value));
        }
        return true;
    });
}

// The packers of a boxed value (see detail/ends.hpp, boxed_v): the slot
// holds a T* to a heap box. Packing leaves the box with the writer;
// unpacking makes a new one.
template <class T>
channels::Parcel* pack_boxed(const void* src) noexcept {
    return pack_value<T>(*static_cast<T* const*>(src));
}
template <class T>
bool unpack_boxed(channels::Parcel* p, void* dst) noexcept {
    return unpacked<T>([&] {
        auto box = std::make_unique<T>();
        read_parcel(p, *box);
        *static_cast<T**>(dst) = box.release();
        return true;
    });
}

}  // namespace detail
}  // namespace csp
