// crossing.hpp: a channel whose partners are on both sides of a boundary.
//
// Within one OS process a value moves straight from the writer's slot to the
// reader's. A partner on the other side of a boundary cannot reach this
// side's private memory, so a channel that crosses one talks to the other
// side through a Crossing: the seam DESIGN.md calls "one seam, several
// transports". channel.cpp and alternation.cpp call it at every point where
// a partner may be on the other side, and know nothing of how the transport
// carries a value; direction is always explicit (Side).
//
// Transports:
//   - the shared arena between forked OS processes (arena_crossing, the
//     first; crossing.cpp). Channel state, waiters and buffers already live
//     in memory both sides map at the same address, so only the values need
//     carrying: they travel as Parcels in the arena. Waking a waiter there is
//     runtime::ready (its OS process's inbox), and poison and retire there
//     are seen in the shared channel state itself.
//   - MPI between ranks (to come): each rank holds a replica of the channel,
//     a remote party is represented on this rank by a proxy waiter of the
//     rank's communication thread (so waking it is runtime::ready too), the
//     transport delivers values by message, and poison and retire made here
//     reach the other ranks through poisoned()/retired().
//
// Rules (besides channel.hpp's):
//   - a waiter of another OS process (!runtime::local(w->parker)) is queued
//     only on a channel that crosses: ChannelCore::crossing is set, under
//     the channel lock, before any partner there may use it (mark_cross);
//   - every writer queued on a channel that crosses carries its value in
//     its waiter (Waiter::parcel), since a reader there may take it;
//   - whoever ends up holding a parcel frees it (parcel_free).
#pragma once

#include "channels/waiter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <streambuf>

namespace csp::channels {

struct ChannelCore;

// Side: which end of a channel an operation or a waiter is on.
enum class Side : std::uint8_t { Reader, Writer };

// Parcel: a value packed for the other side, in the shared arena. `size`
// bytes follow the header.
struct Parcel {
    std::size_t size;
    std::size_t capacity;
    unsigned char* data() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
    const unsigned char* data() const noexcept { return reinterpret_cast<const unsigned char*>(this + 1); }
};

// parcel_new: a parcel of `size` bytes (capacity at least `capacity`);
// throws std::bad_alloc. parcel_free gives it back (nullptr, the lost parcel
// and a parcel kept inside a PlainWait are ignored).
Parcel* parcel_new(std::size_t size, std::size_t capacity = 0);
void parcel_free(Parcel* p) noexcept;
// parcel_own: whether p is a parcel of its own in the arena (one that
// parcel_free gives back, not the lost parcel nor one inside a PlainWait),
// which its owner may hand on.
bool parcel_own(const Parcel* p) noexcept;

// InlineParcel: room for a small value's parcel inside a waiter's own
// record (a transport's: libcsp-mpi's Pending), filled by inline_parcel:
// parcel_free and parcel_own leave such a parcel alone, as one inside a
// PlainWait. (No arena allocation for a small value that crosses.)
struct InlineParcel {
    static constexpr std::size_t kBytes = 48;
    Parcel head;
    alignas(16) unsigned char bytes[kBytes];
};
// inline_parcel: `n` bytes (n <= InlineParcel::kBytes) from `data`, in `room`.
Parcel* inline_parcel(InlineParcel& room, const void* data, std::size_t n) noexcept;

// kParcelTailRoom: room a ParcelWriter leaves after the bytes when it grows
// a parcel, where a transport may put its header and send the parcel as it
// is (libcsp-mpi: Comm::post_parcel), rather than copy a large value again.
inline constexpr std::size_t kParcelTailRoom = 64;

// ParcelWriter: a stream buffer that writes straight into a parcel,
// growing it geometrically (a 64 KiB vector is one copy). For serializers.
class ParcelWriter final : public std::streambuf {
public:
    ParcelWriter();
    ~ParcelWriter() override;
    // release hands over the parcel holding what was written.
    Parcel* release() noexcept;

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override;
    int_type overflow(int_type c) override;

private:
    void reserve(std::size_t more);
    Parcel* parcel_;
};

// ParcelReader: a stream buffer over a parcel's bytes.
class ParcelReader final : public std::streambuf {
public:
    explicit ParcelReader(Parcel* p) noexcept {
        char* b = reinterpret_cast<char*>(p->data());
        setg(b, b, b + p->size);
    }
};

// PlainWait: the record of a plain read's or write's wait, kept in the
// waiting process's WaitArea (so a blocking operation allocates nothing):
// its waiter, and room for a small trivially copyable value. A writer of
// such a value waits with it there (rather than on its stack: with a million
// writers blocked, every stack is another cache miss and page walk away from
// the reader), and a writer in another OS process hands such a value to a
// waiting reader there, so a round trip between OS processes allocates
// nothing in the arena (whose allocator, a mutex and a tree touched
// alternately from two cores, cost more than the rest of the hand-over).
// Every solo waiter is the waiter of a PlainWait.
inline constexpr std::size_t kPlainWaitHead = (sizeof(Waiter) + 15) / 16 * 16 + sizeof(Parcel);
struct PlainWait {
    Waiter waiter;
    alignas(16) Parcel parcel;                                           // for a value handed over
    unsigned char bytes[sizeof(WaitArea::plain_wait) - kPlainWaitHead];  // parcel.data()
};
static_assert(sizeof(PlainWait) <= sizeof(WaitArea::plain_wait));
static_assert(alignof(PlainWait) <= alignof(WaitArea));
static_assert(offsetof(PlainWait, waiter) == 0);
static_assert(offsetof(PlainWait, bytes) == offsetof(PlainWait, parcel) + sizeof(Parcel));
static_assert(offsetof(PlainWait, bytes) % alignof(PlainWait) == 0);

// solo_waiter: p's PlainWait made afresh, its waiter starting a new wait of
// p (a proxy's, or a barrier's; a plain read or write sets its own up in
// channel.cpp's block, on the hot path). `lock` is the one lock every
// completer of that wait holds (runtime::complete_locked).
inline Waiter* solo_waiter(runtime::Parker* p, runtime::SharedLock* lock) noexcept {
    auto* pw = ::new (static_cast<void*>(runtime::upper_area<WaitArea>(p).plain_wait)) PlainWait;
    Waiter* w = &pw->waiter;
    w->parker = p;
    w->token = runtime::begin_wait(p);
    w->solo = true;
    p->completer_lock = lock;
    return w;
}

// ready_waiters: ready the parkers of waiters linked through `next` (won
// under a lock, readied after it is released).
inline void ready_waiters(Waiter* w) noexcept {
    while (w) {
        Waiter* next = w->next;  // read before ready: the waiter's owner may reuse it
        runtime::ready(w->parker);
        w = next;
    }
}

// Crossing: what a channel needs from the other side of a boundary. Every
// call but prepack, receive and settle is made with the channel lock held.
class Crossing {
public:
    // queue_writer: writer waiter `w` of this side is about to be queued.
    virtual void queue_writer(ChannelCore* c, Waiter* w) const noexcept = 0;
    // prepack: before taking the lock, a writer here may pack its value (a
    // large value is not serialized under a spin lock) into *out (nullptr
    // if it need not). False when the value cannot be packed: the writer
    // is told and nothing is sent (the value is never lost on the way).
    virtual bool prepack(ChannelCore* c, const void* src, Parcel** out) const noexcept = 0;
    // hand_to: a writer here completes reader `w` there with *src (which
    // stays the writer's); `pre` is its prepacked value, taken when used.
    virtual void hand_to(ChannelCore* c, Waiter* w, const void* src, Parcel** pre) const noexcept = 0;
    // take_from: a reader here completes writer `w` there: its value, to
    // receive once the lock is released.
    virtual Parcel* take_from(ChannelCore* c, Waiter* w) const noexcept = 0;
    // The buffer of a channel that crosses: put a writer's value in slot
    // (from here: src and pre; from writer waiter w, either side: refill);
    // take the value in a slot for a reader here (into dst, or a parcel to
    // receive, returned); discard the value in a slot.
    virtual void buffer_put(ChannelCore* c, unsigned char* slot, void* src, Parcel** pre) const noexcept = 0;
    virtual void buffer_refill(ChannelCore* c, unsigned char* slot, Waiter* w) const noexcept = 0;
    virtual Parcel* buffer_take(ChannelCore* c, unsigned char* slot, void* dst) const noexcept = 0;
    virtual void buffer_discard(ChannelCore* c, unsigned char* slot) const noexcept = 0;
    // receive: a reader here that got a parcel unpacks it into `dst` (raw
    // storage) and frees it; false, and the channel poisoned, when it cannot.
    virtual bool receive(ChannelCore* c, Parcel* p, void* dst) const noexcept = 0;
    // settle: the waiter of `side` of this side woke with `o` (and may hold
    // a parcel: its own value nobody took, or a value for it); the outcome
    // the operation reports. `slot` as in read's dst.
    virtual Outcome settle(ChannelCore* c, Side side, Waiter* w, Outcome o, void* slot) const noexcept = 0;
    // poisoned / retired: the channel was poisoned, or `side` retired, here.
    virtual void poisoned(ChannelCore* c) const noexcept = 0;
    virtual void retired(ChannelCore* c, Side side) const noexcept = 0;

protected:
    ~Crossing() = default;
};

// arena_crossing: the transport between OS processes forked from one
// another, over the shared arena. A static object: forked children have it
// at the same address, so a ChannelCore in the arena can point at it.
const Crossing& arena_crossing() noexcept;

// mark_cross: channel c may now be used from a forked OS process too (call
// before that process can use it): its buffered values become parcels, its
// queued writers pack theirs, and it crosses by arena_crossing.
void mark_cross(ChannelCore* c) noexcept;

// EndTally: the ends a forked child holds of one channel (or barrier) it
// was handed, counted in the arena as the child makes and drops them, so
// that if the child dies its parent poisons only the channels and barriers
// it still had ends of: one it had retired from (or resigned) is left to
// its other users, buffered values and all.
struct EndTally {
    const void* core;  // a ChannelCore or a BarrierCore
    std::atomic<std::int64_t> ends;
};
// count_ends_in: from now on this OS process (a child, before it runs
// anything) counts its ends of the channels and barriers in tally[0..n).
void count_ends_in(EndTally* tally, std::size_t n) noexcept;
// count_end: an end of `core` (a channel or barrier) joined (+1: before it
// counts there) or left (-1: after) in this OS process; free when no tally
// is kept.
void counted_end(const void* core, int delta) noexcept;
extern EndTally* g_end_tally;
inline void count_end(const void* core, int delta) noexcept {
    if (g_end_tally) [[unlikely]] counted_end(core, delta);
}

// misused_across: the channel was never handed to the OS process using it
// (it reached it through a reference or a global): poisons it and says why.
// foreign_here tells whether that is the case.
bool foreign_here(const ChannelCore* c) noexcept;
Outcome misused_across(ChannelCore* c) noexcept;

}  // namespace csp::channels
