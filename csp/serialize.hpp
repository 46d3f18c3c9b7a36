// serialize.hpp: how values cross OS processes.
//
// Within one OS process a value is moved from writer to reader. To reach
// another OS process it is packed into a parcel in the shared arena: memcpy
// for a trivially copyable type, otherwise cereal's binary archive (the
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

#include <cstring>
#include <exception>
#include <istream>
#include <memory>
#include <new>
#include <ostream>
#include <streambuf>
#include <type_traits>

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

template <class T>
channels::Parcel* pack_value(const void* src) noexcept {
    try {
        if constexpr (std::is_trivially_copyable_v<T>) {
            channels::Parcel* p = channels::parcel_new(sizeof(T));
            std::memcpy(p->data(), src, sizeof(T));
            return p;
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
