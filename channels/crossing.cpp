// crossing.cpp: parcels, and the arena transport between forked OS processes
// (see crossing.hpp for the seam and its rules).
//
// The arena transport. Once a channel crosses (mark_cross, under its lock,
// before a second OS process may use it): every queued writer carries its
// value packed, a writer that completes a reader of another OS process packs
// into the reader's waiter (or into the room of its PlainWait), and a buffer
// of a non-trivial type holds Parcel pointers instead of values (a buffer of
// a trivially copyable type keeps the values themselves: memcpy moves them
// in any OS process). Partners in one OS process still move values straight
// across. A writer packs before it takes the lock (prepack), so a value
// that cannot be packed (its serialization threw, memory ran out) is the
// writer's error and nothing is sent. Only where packing has to happen
// later (values buffered or writers queued before the channel crossed) does
// such a value travel as the lost parcel, and the reader that meets it
// poisons the channel rather than wait for a value never coming.
#include "channels/crossing.hpp"

#include "channels/channel.hpp"
#include "runtime/arena.hpp"
#include "runtime/log.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace csp::channels {
namespace {

using runtime::Locked;
using runtime::SharedLock;

Parcel g_lost_parcel{0, 0};
Parcel* const kLost = &g_lost_parcel;
constexpr std::size_t kInlineMark = ~std::size_t{0};  // Parcel::capacity of one inside a PlainWait

Parcel* slot_parcel(const unsigned char* slot) noexcept {
    Parcel* p;
    std::memcpy(&p, slot, sizeof p);
    return p;
}
void set_slot_parcel(unsigned char* slot, Parcel* p) noexcept { std::memcpy(slot, &p, sizeof p); }

Parcel* pack_or_lost(ChannelCore* c, const void* src) noexcept {
    Parcel* p = c->ops->pack ? c->ops->pack(src) : nullptr;
    if (!p) {
        if (!c->ops->pack) {
            runtime::logger().error("channel '{}' crosses OS processes, but its values ({}) cannot: "
                                    "give the type a cereal serialize function", c->name, c->ops->type_name);
        }
        return kLost;
    }
    return p;
}

// packed: the writer's value, packed before the lock was taken (taken from
// *pre), or now.
Parcel* packed(ChannelCore* c, const void* src, Parcel** pre) noexcept {
    if (pre && *pre) return std::exchange(*pre, nullptr);
    return pack_or_lost(c, src);
}

class ArenaCrossing final : public Crossing {
public:
    void queue_writer(ChannelCore* c, Waiter* w) const noexcept override {
        if (!w->parcel) w->parcel = pack_or_lost(c, w->slot);
    }

    bool prepack(ChannelCore* c, const void* src, Parcel** out) const noexcept override {
        // A small trivially copyable value is not worth it: a waiting reader
        // takes it in its own room, a queued writer packs it by memcpy.
        *out = nullptr;
        if (fits_plain_wait(c)) return true;
        Parcel* p = pack_or_lost(c, src);
        if (p == kLost) return false;
        *out = p;
        return true;
    }

    void hand_to(ChannelCore* c, Waiter* w, const void* src, Parcel** pre) const noexcept override {
        // Into the reader's own PlainWait when it fits: nobody else touches
        // that room until the reader, woken by this very writer, has read it.
        if (w->solo && fits_plain_wait(c)) {
            auto* pw = reinterpret_cast<PlainWait*>(w);
            pw->parcel.size = c->ops->size;
            pw->parcel.capacity = kInlineMark;
            std::memcpy(pw->bytes, src, c->ops->size);
            w->parcel = &pw->parcel;
            return;
        }
        w->parcel = packed(c, src, pre);
    }

    Parcel* take_from(ChannelCore*, Waiter* w) const noexcept override {
        Parcel* p = std::exchange(w->parcel, nullptr);  // (every queued writer has one)
        return p ? p : kLost;
    }

    void buffer_put(ChannelCore* c, unsigned char* slot, void* src, Parcel** pre) const noexcept override {
        if (c->ops->trivial) c->ops->move_construct(slot, src);
        else set_slot_parcel(slot, packed(c, src, pre));
    }

    void buffer_refill(ChannelCore* c, unsigned char* slot, Waiter* w) const noexcept override {
        if (!c->ops->trivial) {
            set_slot_parcel(slot, std::exchange(w->parcel, nullptr));  // (every queued writer has one)
        } else if (runtime::local(w->parker)) {
            c->ops->move_construct(slot, w->slot);
        } else if (w->parcel && w->parcel != kLost) {
            std::memcpy(slot, w->parcel->data(), c->ops->size);
        } else {
            std::memset(slot, 0, c->ops->size);  // (a trivial value that could not be packed: cannot happen)
        }
    }

    Parcel* buffer_take(ChannelCore* c, unsigned char* slot, void* dst) const noexcept override {
        if (!c->ops->trivial) {
            // (The slot forgets it: a holder of the lock that dies before
            // the buffer's count says so leaves no pointer to free twice.)
            Parcel* p = slot_parcel(slot);
            set_slot_parcel(slot, nullptr);
            return p;
        }
        c->ops->move_construct(dst, slot);
        c->ops->destroy(slot);
        return nullptr;
    }

    void buffer_discard(ChannelCore* c, unsigned char* slot) const noexcept override {
        if (c->ops->trivial) {
            c->ops->destroy(slot);
        } else {
            Parcel* p = slot_parcel(slot);
            set_slot_parcel(slot, nullptr);
            parcel_free(p);
        }
    }

    bool receive(ChannelCore* c, Parcel* p, void* dst) const noexcept override {
        const bool ok = p && p != kLost && c->ops->unpack && c->ops->unpack(p, dst);
        parcel_free(p);
        if (!ok) {
            runtime::logger().error("channel '{}': a value from another OS process could not be "
                                    "unpacked; poisoning the channel", c->name);
            poison(c);
        }
        return ok;
    }

    Outcome settle(ChannelCore* c, Side side, Waiter* w, Outcome o, void* slot) const noexcept override {
        Parcel* p = std::exchange(w->parcel, nullptr);
        if (!p) return o;
        if (side == Side::Reader && o == Outcome::Done) return receive(c, p, slot) ? o : Outcome::Poisoned;
        parcel_free(p);  // a writer's own value, which nobody took
        return o;
    }

    // Both sides see the channel state itself.
    void poisoned(ChannelCore*) const noexcept override {}
    void retired(ChannelCore*, Side) const noexcept override {}
};

const ArenaCrossing g_arena_crossing;

}  // namespace

// ---- parcels --------------------------------------------------------------------

Parcel* parcel_new(std::size_t size, std::size_t capacity) {
    capacity = std::max(size, capacity);
    auto* p = static_cast<Parcel*>(runtime::arena_allocate(sizeof(Parcel) + capacity));
    p->size = size;
    p->capacity = capacity;
    return p;
}

static_assert(offsetof(InlineParcel, bytes) == sizeof(Parcel), "an inline parcel's bytes follow its head");

Parcel* inline_parcel(InlineParcel& room, const void* data, std::size_t n) noexcept {
    room.head.size = n;
    room.head.capacity = kInlineMark;
    if (n) std::memcpy(room.bytes, data, n);
    return &room.head;
}

bool parcel_own(const Parcel* p) noexcept { return p && p != kLost && p->capacity != kInlineMark; }

void parcel_free(Parcel* p) noexcept {
    if (p && p != kLost && p->capacity != kInlineMark) runtime::arena_free(p);
}

ParcelWriter::ParcelWriter() : parcel_(parcel_new(0, 256)) {}

ParcelWriter::~ParcelWriter() { parcel_free(parcel_); }

Parcel* ParcelWriter::release() noexcept { return std::exchange(parcel_, nullptr); }

void ParcelWriter::reserve(std::size_t more) {
    const std::size_t need = parcel_->size + more;
    if (need <= parcel_->capacity) return;
    Parcel* bigger = parcel_new(parcel_->size, std::max(need + kParcelTailRoom, 2 * parcel_->capacity));
    std::memcpy(bigger->data(), parcel_->data(), parcel_->size);
    parcel_free(std::exchange(parcel_, bigger));
}

std::streamsize ParcelWriter::xsputn(const char* s, std::streamsize n) {
    reserve(static_cast<std::size_t>(n));
    std::memcpy(parcel_->data() + parcel_->size, s, static_cast<std::size_t>(n));
    parcel_->size += static_cast<std::size_t>(n);
    return n;
}

ParcelWriter::int_type ParcelWriter::overflow(int_type c) {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
}

// ---- the seam -------------------------------------------------------------------

const Crossing& arena_crossing() noexcept { return g_arena_crossing; }

void mark_cross(ChannelCore* c) noexcept {
    Waiter* failed = nullptr;
    {
        Locked<SharedLock> hold(c->lock);
        if (c->crossing.load(std::memory_order_relaxed)) return;
        if (!c->ops->trivial) {
            // Buffered values become parcels (the other OS process cannot use
            // this one's heap). Every user so far is in this OS process.
            for (std::size_t i = 0; i < c->count; ++i) {
                unsigned char* slot = buffer_slot(c, i);
                Parcel* p = pack_or_lost(c, slot);
                c->ops->destroy(slot);
                set_slot_parcel(slot, p);
            }
        }
        c->crossing.store(&g_arena_crossing, std::memory_order_relaxed);
        c->unusual = true;
        // Queued writers pack their values now. One whose value cannot be
        // packed (its serializer threw: a Python object pickle refuses) is
        // not left to hand a lost value on: its write ends Unpackable (the
        // writer keeps its value and gets the error), as it would have had it
        // come after this.
        for (Waiter* w = c->writers.head; w;) {
            Waiter* next = w->next;
            g_arena_crossing.queue_writer(c, w);
            if (w->parcel == kLost) {
                w->parcel = nullptr;
                c->writers.remove(w);
                const std::uint32_t word = encode(Outcome::Unpackable, w->index);
                const bool won = w->solo ? runtime::complete_locked(w->parker, w->token, word)
                                         : runtime::try_complete(w->parker, w->token, word);
                if (won) {
                    w->next = failed;
                    failed = w;
                }
            }
            w = next;
        }
    }
    ready_waiters(failed);
}

EndTally* g_end_tally = nullptr;
namespace {
std::size_t g_end_tally_size = 0;
}

void count_ends_in(EndTally* tally, std::size_t n) noexcept {
    g_end_tally_size = n;
    g_end_tally = n ? tally : nullptr;
}

void counted_end(const void* c, int delta) noexcept {
    for (std::size_t i = 0; i < g_end_tally_size; ++i) {
        if (g_end_tally[i].core == c) {
            g_end_tally[i].ends.fetch_add(delta, std::memory_order_relaxed);
            return;
        }
    }
}

bool foreign_here(const ChannelCore* c) noexcept {
    return c->home != runtime::g_local_inbox && !c->crossing.load(std::memory_order_relaxed);
}

Outcome misused_across(ChannelCore* c) noexcept {
    // Its values may live in its maker's private memory: poison it rather
    // than move garbage, so its partners stop too.
    runtime::logger().error("channel '{}' is used from an OS process it was not handed to; poisoning it",
                            c->name);
    poison(c);
    return Outcome::Misused;
}

}  // namespace csp::channels
