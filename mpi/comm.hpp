// comm.hpp: the communication thread of a rank, and the turn it shares with
// idle workers: one caller of MPI at a time (between MPI_Init_thread and
// MPI_Finalize, which the World calls).
//
// Fibers never call MPI: they queue messages (post) and park; whoever holds
// the turn sends them, receives what other ranks send (MPI_Improbe /
// MPI_Mrecv on a duplicated communicator, so user MPI traffic never matches
// csp's), hands each to its handler (channels.cpp, world.cpp) and readies
// the processes waiting for it with runtime::ready. It also finishes the
// proxies of other ranks' processes (channels.cpp): their parkers' home is
// the thread's inbox, so their completions reach it like wake-ups from
// another OS process. The turn is the communication thread's, except while
// idle workers of this rank serve (a process waits for another rank: they
// do the rounds from their scheduler loops, and the thread sleeps, looking
// in now and then; see comm.cpp). Idle with no server, the thread yields
// while messages came lately, then sleeps on its inbox's word for growing
// spans (up to kLongestNap: messages from other ranks arrive without ringing
// it), and a post or a completion rouses it.
//
// Every message is one MPI message of bytes: a payload, then a Header (see
// Message).
// Messages between two ranks arrive in the order they were posted (MPI's
// non-overtaking rule, one tag, one communicator), which the end counts
// and the shutdown rely on.
#pragma once

#include "channels/crossing.hpp"
#include "runtime/scheduler.hpp"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace csp::mpi::detail {

enum class Kind : std::uint32_t {
    // channels.cpp
    Hello,    // a replica was made: chan, payload = its name
    HomeCheck,  // to chan's default home: the sender chose rank a for chan's home; payload = its name
    Ends,     // an end of side `a` joined or left a replica: b = delta + 1 (2 joined, 0 left), req = the
              // rank's SPMD ends of that side so far (its epoch; see channels.cpp)
    Read,     // a process there reads chan: req, b = its rank's deadlocks so far, pad = a Way
    Write,    // a process there writes chan: req, b = as Read, pad = as Read, payload = the value
    Poison,   // poison chan
    Data,     // to a reader: req, payload = the value; for an ExtRead a = 1 and chan = the channel
    Done,     // to a writer: req (the value was taken)
    Failed,   // to either: req, a = the outcome (poisoned, retired; 0: a try found nothing ready)
    // A choice there (channels.cpp, "choices across ranks"):
    Offer,     // to the home of chan: a choice's guard: req = the choice, a = the guard, b = as Read,
               // pad = the side (0 reader, 1 writer), payload = a writer's value
    Reserve,   // to the chooser's rank: reserve choice req for guard a; chan = the offer's ticket
    Reserved,  // to the home: req = the ticket, a = 1 if reserved (0: the choice is over, or reserved
               // elsewhere)
    Fire,      // to the chooser's rank: choice req ends with guard a, b = the outcome, pad = FireFlags (chan: kExtended),
               // payload = an input guard's value
    Withdraw,  // to a home: the choice req is over; its offers there go
    // An extended read there (channels.cpp, "extended reads across ranks"):
    ExtRead,  // to the home of chan: as Read; answered with Data (a = 1) while the home holds the writer
    ExtDone,  // to the home of chan: the reader's action for request req is over: a = 1 returned, 0 threw
    // Barriers shared by ranks (channels.cpp, "barriers across ranks"; chan = the barrier's id | kBarrierBit):
    BarrierHello,   // a replica was made: payload = its name
    BarrierEnds,    // to the home: b = delta + 1, req = the sender's SPMD ends of it so far (its epoch),
                    // a = 1: the home's own SPMD end (counted for every rank)
    BarrierArrive,  // to the home: a member arrived (a = 2) or was taken back (a = 0) in phase req
    BarrierPhase,   // from the home: phase req is over
    BarrierPoison,  // to the home: poisoned there; from the home: poison it here
    // Alting barriers shared by ranks:
    BarrierOffers,    // to the home: a = how many choices offer it there in phase req; b = the report's sequence
    BarrierReserve,   // from the home: reserve the offers here for phase req (round a), of members of epoch <= b, pad
    BarrierReserved,  // to the home: b offers reserved for phase req (round a); pad of members it does not count yet
    BarrierRelease,   // from the home: round a failed: the offers reserved here choose again
    // world.cpp
    Result,   // placement `chan`'s result: payload
    Failure,  // placement `chan` failed: a = the rank, payload = type '\0' what
    Bye,      // this rank is done: nothing more comes from it
    // deadlock.cpp (control messages: not counted in sent / received)
    Quiet,     // to rank 0: this rank is quiet; req = sent, chan = received, payload = report lines
    Probe,     // from rank 0: are you still quiet? chan = the wave
    State,     // to rank 0: chan = the wave, a = quiet, req = sent, b.. : see deadlock.cpp
    Deadlock,  // from rank 0: every rank is blocked; payload = the report
    // view.cpp (control too: a view of the network, csp::write_graph)
    View,   // what are your processes doing? req = the ask
    Shown,  // the answer to ask req: payload = the title, '\0', the part (runtime::AcrossPart)
    // comm.cpp (control too)
    Farewell,  // this rank has every Bye and sends nothing more (see Comm::loop)
    Bundle,    // several small messages to one rank, posted in a row, as one MPI message: a = how many;
               // payload = for each, its length (u32) and its bytes (payload, Header). Not counted itself:
               // each message in it is (see Comm::send_queued)
};

// kBarrierBit: marks a barrier's id in a message's chan (channels and
// barriers are numbered apart).
inline constexpr std::uint64_t kBarrierBit = std::uint64_t{1} << 63;

// Way: how a Read or Write is meant (in pad).
enum Way : std::uint32_t { kWait = 0, kTry = 1, kProbe = 2 };  // (probe: is that side retired?)
// FireFlags (in a Fire's pad).
// (kExtended: an ExtendedInputGuard's value, whose home holds its writer:
// chan names the channel, for an ExtDone should the choice be gone.)
enum FireFlags : std::uint32_t { kByReserver = 1, kReleased = 2, kWithValue = 4, kExtended = 8 };

// control: a message not counted in sent / received (the deadlock
// detector's, views', Farewell; Bundle is not counted itself, its messages
// are).
inline bool control(Kind k) noexcept { return k >= Kind::Quiet; }

struct Header {
    Kind kind;
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    std::uint32_t pad = 0;
    std::uint64_t chan = 0;
    std::uint64_t req = 0;
};

// Bytes: a message's bytes, not zeroed when made (a 1 MiB value would pay
// a pass over memory for nothing: it is written at once).
class Bytes {
public:
    Bytes() = default;
    explicit Bytes(std::size_t n) : data_(new char[n]), size_(n) {}  // (uninitialised)
    char* data() noexcept { return data_.get(); }
    const char* data() const noexcept { return data_.get(); }
    std::size_t size() const noexcept { return size_; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0;
};

// On the wire a message is its payload, then its Header: at the end, so
// that a received payload lands at the start of a parcel that the handler
// takes as it is (take_parcel), with no copy. (A 1 MiB value was copied
// once more on receipt; see BENCHMARKS.md, mpi.)
//
// SentParcel: a parcel a message is sent from, freed with it.
struct SentParcel {
    channels::Parcel* parcel = nullptr;
    SentParcel() = default;
    explicit SentParcel(channels::Parcel* p) noexcept : parcel(p) {}
    SentParcel(SentParcel&& o) noexcept : parcel(std::exchange(o.parcel, nullptr)) {}
    SentParcel& operator=(SentParcel&& o) noexcept {
        if (this != &o) {
            channels::parcel_free(parcel);
            parcel = std::exchange(o.parcel, nullptr);
        }
        return *this;
    }
    ~SentParcel() { channels::parcel_free(parcel); }
};

// Outgoing: a message posted, to be sent: its bytes (a small message's
// in the object itself: no allocation), or (post_parcel) a parcel with the
// header after its payload, or (post_in_place) `small`'s first `split`
// bytes, then `external_size` bytes where they lie (a waiting writer's
// value), then the rest of `small` (the header): one MPI message of three
// pieces (Comm::isend).
struct Outgoing {
    static constexpr std::size_t kInline = 192;  // (a Data of a value up to 160 bytes; a bundle of a few)
    int peer = 0;  // the destination
    Kind kind{};
    std::uint32_t inline_size = 0;  // bytes in `small` (0: in `bytes` or `from`)
    std::uint32_t split = 0;        // (with `external`: where in `small` it goes)
    const void* external = nullptr;
    std::size_t external_size = 0;
    std::atomic<bool>* sent_flag = nullptr;  // (with `external`: set once MPI is done with it)
    Bytes bytes;
    SentParcel from;
    alignas(8) char small[kInline];

    Outgoing() = default;
    Outgoing(int to, Kind k) noexcept : peer(to), kind(k) {}
    Outgoing(Outgoing&& o) noexcept
        : peer(o.peer), kind(o.kind), inline_size(o.inline_size), split(o.split), external(o.external),
          external_size(o.external_size), sent_flag(std::exchange(o.sent_flag, nullptr)), bytes(std::move(o.bytes)),
          from(std::move(o.from)) {
        std::memcpy(small, o.small, inline_size);
    }
    Outgoing& operator=(Outgoing&& o) noexcept {
        peer = o.peer;
        kind = o.kind;
        inline_size = o.inline_size;
        split = o.split;
        external = o.external;
        external_size = o.external_size;
        sent_flag = std::exchange(o.sent_flag, nullptr);
        bytes = std::move(o.bytes);
        from = std::move(o.from);
        std::memcpy(small, o.small, inline_size);
        return *this;
    }
    // room: make room for n bytes (inline if they fit), for the caller to write.
    char* room(std::size_t n) {
        if (n <= kInline) {
            inline_size = static_cast<std::uint32_t>(n);
            return small;
        }
        bytes = Bytes(n);
        return bytes.data();
    }
    // (data: not for one with external bytes, which is never bundled.)
    char* data() noexcept {
        return from.parcel ? reinterpret_cast<char*>(from.parcel->data()) : inline_size ? small : bytes.data();
    }
    std::size_t size() const noexcept {
        return from.parcel    ? from.parcel->size + sizeof(Header)
               : external     ? inline_size + external_size
               : inline_size  ? inline_size
                              : bytes.size();
    }
};

// Message: a message received: its header, and its payload in a parcel of
// the arena (its capacity holds the header too), or, when the arena had no
// room, on the heap, or (a small one, or one of a bundle) borrowed from the
// receiver's buffer for as long as its handler runs: a handler that keeps
// the message moves it, which copies a borrowed payload.
struct Message {
    int peer = 0;  // the sender
    Header head{};
    channels::Parcel* parcel = nullptr;
    Bytes bytes;                   // (payload then header: only without a parcel or a view)
    const char* view = nullptr;    // a borrowed payload (see above)
    std::size_t view_size = 0;

    Message() = default;
    Message(Message&& o) : peer(o.peer), head(o.head), parcel(std::exchange(o.parcel, nullptr)), bytes(std::move(o.bytes)) {
        if (o.view) own(o);
    }
    Message& operator=(Message&& o) {
        if (this != &o) {
            channels::parcel_free(parcel);
            peer = o.peer;
            head = o.head;
            parcel = std::exchange(o.parcel, nullptr);
            bytes = std::move(o.bytes);
            view = nullptr;
            view_size = 0;
            if (o.view) own(o);
        }
        return *this;
    }
    ~Message() { channels::parcel_free(parcel); }

    const Header& header() const noexcept { return head; }
    const char* payload() const noexcept {
        return parcel ? reinterpret_cast<const char*>(parcel->data()) : view ? view : bytes.data();
    }
    std::size_t payload_size() const noexcept {
        return parcel ? parcel->size
               : view ? view_size
                      : bytes.size() > sizeof(Header) ? bytes.size() - sizeof(Header) : 0;
    }
    // take_parcel: the payload as a parcel, the caller's to free: the one it
    // came in (no copy), or a copy (throws std::bad_alloc). Once taken, the
    // payload is gone from the message.
    channels::Parcel* take_parcel();

private:
    // own: copy o's borrowed payload (and the header) into bytes.
    void own(Message& o) {
        bytes = Bytes(o.view_size + sizeof(Header));
        if (o.view_size) std::memcpy(bytes.data(), o.view, o.view_size);
        std::memcpy(bytes.data() + o.view_size, &head, sizeof(Header));
        o.view = nullptr;
        o.view_size = 0;
    }
};

// Pending: a process of this rank waiting for an answer (Data, Done,
// Failed, a Result): the communication thread ends its wait.
struct Pending {
    runtime::Parker* parker = nullptr;
    std::uint64_t token = 0;
    channels::Parcel* got = nullptr;  // what came (Data, Result), to free
    std::uint64_t req = 0;            // (channels.cpp: the request it waits for)
    channels::InlineParcel room;      // (got, for a small value: no arena allocation)
};
// finish: end the wait of `p` with `outcome` (from the communication thread).
void finish(Pending* p, std::uint32_t outcome) noexcept;

// RankWait: while it lives, a process of this rank waits for another rank
// (idle workers stay awake a while: runtime::Runtime::rank_waits).
struct RankWait {
    RankWait() noexcept { runtime::rt().rank_waits.fetch_add(1, std::memory_order_relaxed); }
    ~RankWait() { runtime::rt().rank_waits.fetch_sub(1, std::memory_order_relaxed); }
    RankWait(const RankWait&) = delete;
    RankWait& operator=(const RankWait&) = delete;
};

class Comm {
public:
    Comm(MPI_Comm comm, int rank, int size);
    ~Comm();  // (after stop)

    const int rank;
    const int size;
    // The OS process that owns MPI here: a csp::multiprocess child (a fork)
    // has a copy of this object but no communication thread, and must not
    // touch MPI (see reachable()).
    bool reachable() const noexcept { return !g_forked.load(std::memory_order_relaxed); }
    // (Set in a child by a pthread_atfork handler: getpid() is a system call,
    // and every channel operation asks.)
    static std::atomic<bool> g_forked;

    // post: queue a message for `peer` (any thread, any time before stop).
    void post(int peer, const Header& h, const void* payload = nullptr, std::size_t n = 0);
    // post_parcel: post with `value`'s bytes as payload, taking `value` (the
    // caller's to give: parcel_own): sent from it when its capacity has room
    // for the header after its bytes (no copy), else copied and freed.
    void post_parcel(int peer, const Header& h, channels::Parcel* value);
    // post_in_place: post with payload `prefix` (up to 64 bytes), then `n`
    // bytes at `data`, sent from where they lie: the caller keeps them
    // there, unchanged, until *sent is true (set by whoever holds the turn
    // once MPI has completed the send, or at once if the message is
    // dropped). (Its answer alone is not enough: MPI may still hold the
    // buffer until the send's request completes, and a wait ended by a
    // deadlock across ranks may end before the message has even left.)
    void post_in_place(int peer, const Header& h, const void* prefix, std::size_t prefix_n, const void* data,
                       std::size_t n, std::atomic<bool>* sent);
    // inbox: where proxies' parkers are readied.
    runtime::Inbox* inbox() noexcept { return inbox_; }
    // stop: say Bye to every rank, serve until every rank has said it,
    // then Farewell (see loop) and end the thread (the World's destructor).
    void stop();
    // The messages of this rank, not counting control ones: posted (sent)
    // and handled (received). (For the deadlock detector: deadlock.cpp.)
    std::uint64_t sent() const noexcept { return sent_.load(std::memory_order_acquire); }
    std::uint64_t received() const noexcept { return received_.load(std::memory_order_acquire); }
    // idle: no counted message waits to be sent, no proxy to finish, none
    // to replay.
    bool idle() noexcept;
    // main_done: this rank's main has ended (the World is going): no process
    // of it will run again.
    bool main_done() const noexcept { return main_done_.load(std::memory_order_acquire); }
    // deadlocks: how many deadlocks across ranks this rank has broken (the
    // epoch a Read or Write request carries, in b: see channels.cpp).
    std::uint32_t deadlocks() const noexcept { return deadlocks_.load(std::memory_order_acquire); }
    std::uint32_t note_deadlock() noexcept { return deadlocks_.fetch_add(1, std::memory_order_acq_rel) + 1; }

    // serve_turn: one round of this thread's work, receiving up to `most`
    // messages, by whoever holds the turn (comm.cpp); whether it did
    // something.
    bool serve_turn(int most) noexcept;

private:
    void loop() noexcept;
    bool serve(int most);
    bool send_queued();
    bool receive(int most);
    bool progress_sends();
    bool finish_proxies();
    void nap(std::int64_t quiet_since) noexcept;
    void wait_for_servers(std::int64_t nap) noexcept;
    void dispatch(Message& m);

    MPI_Comm comm_;
    runtime::Inbox* inbox_;
    std::atomic<std::uint32_t> word_{0};
    runtime::SpinLock queue_lock_;
    std::vector<Outgoing> queue_;  // posted, not yet sent
    struct Sending {
        MPI_Request request;
        Outgoing message;
    };
    void enqueue(Outgoing m);
    // new_sending: room for the next send, in flight once start_send has
    // sent its message (filled in place: a bundle is made there, not moved
    // there); isend: m's send.
    Outgoing& new_sending();
    void start_send();
    void isend(Outgoing&& m);
    void dispatch_bundle(const Message& bundle);
    std::vector<Outgoing> batch_;  // (send_queued's: kept for its capacity)
    std::vector<std::uint8_t> taken_;
    // In flight (MPI has their addresses: each stays where it is), and done
    // ones kept for the next sends (no allocation a message).
    std::vector<std::unique_ptr<Sending>> sending_, spare_sends_;
    std::size_t in_place_sending_ = 0;  // of sending_, those sent from a writer's value (post_in_place)
    alignas(64) char received_small_[512];  // (receive's, for small messages: see Message)
    std::atomic<bool> stopping_{false};
    std::atomic<bool> main_done_{false};
    std::atomic<std::uint32_t> deadlocks_{0};
    std::atomic<std::uint64_t> sent_{0}, received_{0};
    std::atomic<std::int64_t> unsent_{0};  // posted, counted, not yet handed to MPI
    int byes_ = 0;
    int farewells_ = 0;
    std::atomic<bool> farewell_sent_{false};
    bool done_ = false;                        // (guarded by the turn: the loop has ended)
    std::thread thread_;
};

// The communication thread of the World, while there is one (and it has
// more than one rank).
extern Comm* g_comm;

// Handlers (channels.cpp, world.cpp), on the communication thread or a
// worker serving in its turn (comm.cpp): one at a time.
void on_channel_message(Message& m);
bool channels_tick();  // messages that came before their channel was made here
void channels_sent() noexcept;  // the round's sends are out: what waited for them may go
bool channel_replays_pending();
void on_proxy_done(runtime::Parker* p) noexcept;
void deadlock_broken(std::uint32_t deadlocks);  // (deadlock.cpp: before this rank's waits are ended)
void on_world_message(Message& m);
void on_detector_message(Message& m);
// view.cpp: a view of the network across ranks (channels::Distribution::view_ranks).
// open_views: the World has its communication thread (g_comm): views may
// ask other ranks. close_views: it is about to stop it (waits for a view
// under way). keyed_rank: this rank while views are open, else -1 (for
// channel_key: atomic, no lock).
void open_views(int rank);
void close_views();
int keyed_rank() noexcept;
void on_view_message(Message& m);
std::vector<std::pair<std::string, std::string>> view_ranks(std::vector<std::pair<std::string, std::string>> own,
                                                           std::chrono::milliseconds wait);
void start_detector() noexcept;  // (the World, once the communication thread runs)
void after_messages();           // (whoever holds the turn, having handled some)
void quiet_again();              // (the communication thread, idle again)
void stopping_rank();            // (the World: this rank's main is done)

}  // namespace csp::mpi::detail
