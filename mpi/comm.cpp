// comm.cpp: the communication thread (see comm.hpp).
#include "mpi/comm.hpp"

#include "runtime/arena.hpp"
#include "runtime/futex.hpp"
#include "runtime/log.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <sched.h>

namespace csp::mpi::detail {

Comm* g_comm = nullptr;

namespace {
constexpr int kTag = 7011;
// Idle: yield the core until kHotSpan has passed since the last message
// (traffic tends to come in runs: each hop of one waits for this thread to
// look), then sleep, each nap twice the last, up to kLongestNap. No spin on
// `pause` first: mpirun binds a rank to a core, so the worker this thread
// has just readied, or the one about to hand it a message, shares its core
// and runs only when it yields (200 pauses first cost bench/mpi 37 against
// 14 us one-way, and mpi-commstime on 2 ranks 16.8 against 4.6 us).
constexpr std::int64_t kHotSpan = 5'000'000;     // ns
// The thread's own rounds receive up to this many messages (a worker's,
// one: see serve_from_worker).
constexpr int kReceivesPerRound = 64;
// A round that received something tests its sends only when this many are
// in flight (see serve).
constexpr std::size_t kSendsBeforeTest = 8;
constexpr std::int64_t kFirstNap = 20'000;       // ns
constexpr std::int64_t kLongestNap = 1'000'000;  // ns
// While workers serve (see loop): a look now and then, for messages that
// come while every server runs a process for long.
constexpr std::int64_t kFirstServerNap = 50'000;     // ns
constexpr std::int64_t kLongestServerNap = 200'000;  // ns

// tracing: whether trace lines are wanted (CSP_LOG=trace): asked before
// the three a message makes have their arguments gathered.
bool tracing() noexcept { return runtime::logger().should_log(spdlog::level::trace); }

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// The turn: whoever holds it does the communication thread's work (one MPI
// caller at a time: MPI_THREAD_SERIALIZED). Usually that thread; while
// processes wait for another rank, an idle worker (runtime's serve_ranks),
// and the thread sleeps meanwhile (g_servers): two threads taking turns on
// one core cost a context switch or two per message. Static, not members,
// so that a worker that loaded the hook late can still call it after the
// Comm is gone: g_turn_comm is then null.
namespace {
runtime::SpinLock g_turn;
Comm* g_turn_comm = nullptr;  // (guarded by g_turn)
// Workers that began serving and have not ended: serving, or away running a
// process they woke (a futex word: the thread waits on it).
std::atomic<std::uint32_t> g_servers{0};

// serve_round: a round of the turn's work, receiving up to `most`
// messages, if the turn is free.
bool serve_round(int most) noexcept {
    if (!g_turn.try_lock()) return false;
    bool busy = false;
    if (Comm* c = g_turn_comm) busy = c->serve_turn(most);
    g_turn.unlock();
    return busy;
}

// serve_from_worker: the hook. A worker's round receives one message (or
// one bundle): what it readies, the worker runs next, where another look
// at MPI first (an empty probe is some 700 instructions) delayed every hop
// of bench/mpi's ping-pong by about 6%.
bool serve_from_worker(runtime::RankServe step) noexcept {
    switch (step) {
        case runtime::RankServe::Begin:
            g_servers.fetch_add(1, std::memory_order_seq_cst);
            return false;
        case runtime::RankServe::End:
            if (g_servers.fetch_sub(1, std::memory_order_seq_cst) == 1) runtime::futex_wake(g_servers);
            return false;
        case runtime::RankServe::Round:
            break;
    }
    return serve_round(1);
}
}  // namespace

channels::Parcel* Message::take_parcel() {
    if (parcel) return std::exchange(parcel, nullptr);
    channels::Parcel* copy = channels::parcel_new(payload_size());
    std::memcpy(copy->data(), payload(), payload_size());
    bytes = Bytes();
    view = nullptr;
    view_size = 0;
    return copy;
}

void finish(Pending* p, std::uint32_t outcome) noexcept {
    if (runtime::try_complete(p->parker, p->token, outcome)) runtime::ready(p->parker);
}

std::atomic<bool> Comm::g_forked{false};

Comm::Comm(MPI_Comm comm, int r, int n) : rank(r), size(n), comm_(comm) {
    static const int registered =
        pthread_atfork(nullptr, nullptr, [] { g_forked.store(true, std::memory_order_relaxed); });
    (void)registered;
    spare_sends_.reserve(64);  // (progress_sends keeps up to that many: no push allocates)
    inbox_ = runtime::arena_new<runtime::Inbox>();
    inbox_->words = static_cast<std::atomic<std::uint32_t>*>(runtime::arena_allocate(sizeof(std::atomic<std::uint32_t>)));
    ::new (static_cast<void*>(inbox_->words)) std::atomic<std::uint32_t>(runtime::kAwake);
    inbox_->count = inbox_->capacity = 1;
    // Everything the thread may use is in place before it starts: a message
    // from a faster rank (its detector's, say) can arrive at once, and was
    // handled with g_comm still null (a crash, 1 run in 4 of hello_world
    // on 3 ranks under MPICH).
    g_comm = this;
    {
        runtime::Locked<runtime::SpinLock> hold(g_turn);
        g_turn_comm = this;
    }
    runtime::set_rank_serve_hook(&serve_from_worker);
    thread_ = std::thread([this] { loop(); });
}

Comm::~Comm() {
    if (thread_.joinable()) thread_.join();
    // (The inbox stays: a late ready() may still ring it.)
}

void Comm::post(int peer, const Header& h, const void* payload, std::size_t n) {
    if (farewell_sent_.load(std::memory_order_acquire)) {
        // (Only the detector's answers can come this late: no rank needs them.)
        runtime::logger().trace("rank {}: to {}: kind {} dropped (after the farewells)", rank, peer,
                                static_cast<unsigned>(h.kind));
        return;
    }
    if (tracing()) {
        runtime::logger().trace("rank {}: to {}: kind {} chan {} req {:x} a {} b {} ({} bytes)", rank, peer,
                                static_cast<unsigned>(h.kind), h.chan, h.req, h.a, h.b, n);
    }
    Outgoing m(peer, h.kind);
    char* into = m.room(n + sizeof(Header));
    if (n) std::memcpy(into, payload, n);
    std::memcpy(into + n, &h, sizeof h);
    enqueue(std::move(m));
}

static_assert(sizeof(Header) <= channels::kParcelTailRoom, "a packed value's parcel has room for a Header after it");

void Comm::post_parcel(int peer, const Header& h, channels::Parcel* value) {
    SentParcel owned(value);
    if (!value || value->capacity - value->size < sizeof(Header) ||
        farewell_sent_.load(std::memory_order_acquire)) {
        return post(peer, h, value ? value->data() : nullptr, value ? value->size : 0);
    }
    if (tracing()) {
        runtime::logger().trace("rank {}: to {}: kind {} chan {} req {:x} a {} b {} ({} bytes, sent from its parcel)",
                                rank, peer, static_cast<unsigned>(h.kind), h.chan, h.req, h.a, h.b, value->size);
    }
    std::memcpy(value->data() + value->size, &h, sizeof h);
    Outgoing m(peer, h.kind);
    m.from = std::move(owned);
    enqueue(std::move(m));
}

void Comm::post_in_place(int peer, const Header& h, const void* prefix, std::size_t prefix_n, const void* data,
                         std::size_t n, std::atomic<bool>* sent) {
    if (farewell_sent_.load(std::memory_order_acquire)) {
        sent->store(true, std::memory_order_release);
        return post(peer, h);  // (dropped there)
    }
    if (tracing()) {
        runtime::logger().trace("rank {}: to {}: kind {} chan {} req {:x} a {} b {} ({} bytes, sent in place)", rank,
                                peer, static_cast<unsigned>(h.kind), h.chan, h.req, h.a, h.b, prefix_n + n);
    }
    static_assert(64 + sizeof(Header) <= Outgoing::kInline);
    Outgoing m(peer, h.kind);
    char* into = m.room(prefix_n + sizeof(Header));
    std::memcpy(into, prefix, prefix_n);
    std::memcpy(into + prefix_n, &h, sizeof h);
    m.split = static_cast<std::uint32_t>(prefix_n);
    m.external = data;
    m.external_size = n;
    m.sent_flag = sent;
    enqueue(std::move(m));
}

void Comm::enqueue(Outgoing m) {
    if (!control(m.kind)) {
        sent_.fetch_add(1, std::memory_order_acq_rel);
        unsent_.fetch_add(1, std::memory_order_acq_rel);
    }
    {
        runtime::Locked<runtime::SpinLock> hold(queue_lock_);
        queue_.push_back(std::move(m));
    }
    // Rung only if the thread may sleep on it (ring's compare-and-swap was
    // two a hop of bench/mpi): a thread that stored kAsleep before it
    // looked at the queue under queue_lock_ (nap) is seen here, that lock
    // ordering its store before this load; one that looked later saw the
    // message.
    if (inbox_->words[0].load(std::memory_order_relaxed) != runtime::kAwake) runtime::ring(inbox_);
}

void Comm::stop() {
    main_done_.store(true, std::memory_order_release);
    stopping_rank();  // (quiet for good: the other ranks' deadlocks can still be found)
    for (int r = 0; r < size; ++r) {
        if (r != rank) post(r, Header{Kind::Bye});
    }
    stopping_.store(true, std::memory_order_seq_cst);  // (after the Byes: the loop ends once they are sent)
    runtime::ring(inbox_);
    runtime::futex_wake(g_servers);
    thread_.join();
}

// Consecutive small messages to one rank (a process that answers one
// request and makes the next, say) go as one MPI message, a bundle: MPI's
// cost is mostly per message (bench/mpi's ping-pong sends two a hop: a
// value and the next request). Up to kBundleMost messages of kBundleSmall
// bytes or less each; a larger one to the same rank ends the bundle (the
// order to each rank is kept).
namespace {
constexpr std::size_t kBundleSmall = 1024;
constexpr std::size_t kBundleBytes = 16 * 1024;
constexpr std::size_t kBundleMost = 64;
}  // namespace

Outgoing& Comm::new_sending() {
    std::unique_ptr<Sending> room;
    if (spare_sends_.empty()) {
        room = std::make_unique<Sending>();
    } else {
        room = std::move(spare_sends_.back());
        spare_sends_.pop_back();
    }
    room->request = MPI_REQUEST_NULL;
    sending_.push_back(std::move(room));
    return sending_.back()->message;
}

void Comm::isend(Outgoing&& m) {
    new_sending() = std::move(m);
    start_send();
}

void Comm::start_send() {
    Sending& sent = *sending_.back();
    const int peer = sent.message.peer;
    if (sent.message.size() > static_cast<std::size_t>(INT32_MAX)) {
        runtime::log_fatal("csp mpi: a value of 2 GB or more cannot cross ranks yet (one MPI message each)");
    }
    if (sent.message.external) {
        ++in_place_sending_;
        // Three pieces, one message (the receiver sees its bytes in a row).
        Outgoing& o = sent.message;
        int lengths[3] = {static_cast<int>(o.split), static_cast<int>(o.external_size),
                          static_cast<int>(o.inline_size - o.split)};
        MPI_Aint at[3];
        MPI_Get_address(o.small, &at[0]);
        MPI_Get_address(o.external, &at[1]);
        MPI_Get_address(o.small + o.split, &at[2]);
        MPI_Datatype pieces;
        MPI_Type_create_hindexed(3, lengths, at, MPI_BYTE, &pieces);
        MPI_Type_commit(&pieces);
        MPI_Isend(MPI_BOTTOM, 1, pieces, peer, kTag, comm_, &sent.request);
        MPI_Type_free(&pieces);  // (the send keeps what it needs)
        return;
    }
    MPI_Isend(sent.message.data(), static_cast<int>(sent.message.size()), MPI_BYTE, peer, kTag, comm_, &sent.request);
}

bool Comm::send_queued() {
    {
        runtime::Locked<runtime::SpinLock> hold(queue_lock_);
        if (queue_.empty()) return false;
        batch_.swap(queue_);  // (queue_ gets the last batch's capacity)
    }
    const std::size_t n = batch_.size();
    std::int64_t counted = 0;
    for (const Outgoing& m : batch_) counted += control(m.kind) ? 0 : 1;
    if (counted) unsent_.fetch_sub(counted, std::memory_order_acq_rel);
    taken_.assign(n, 0);
    std::size_t in_bundle[kBundleMost];
    for (std::size_t i = 0; i < n; ++i) {
        if (taken_[i]) continue;
        Outgoing& first = batch_[i];
        std::size_t count = 0;
        std::size_t bytes = 0;
        if (first.size() <= kBundleSmall && !first.external) {
            for (std::size_t j = i; j < n && count < kBundleMost; ++j) {
                const Outgoing& m = batch_[j];
                if (taken_[j] || m.peer != first.peer) continue;
                if (m.size() > kBundleSmall || m.external ||
                    bytes + sizeof(std::uint32_t) + m.size() > kBundleBytes) {
                    break;
                }
                in_bundle[count++] = j;
                bytes += sizeof(std::uint32_t) + m.size();
            }
        }
        if (count < 2) {
            isend(std::move(first));
            continue;
        }
        Outgoing& bundle = new_sending();
        bundle.peer = first.peer;
        bundle.kind = Kind::Bundle;
        char* at = bundle.room(bytes + sizeof(Header));
        for (std::size_t k = 0; k < count; ++k) {
            Outgoing& m = batch_[in_bundle[k]];
            taken_[in_bundle[k]] = 1;
            const auto size = static_cast<std::uint32_t>(m.size());
            std::memcpy(at, &size, sizeof size);
            std::memcpy(at + sizeof size, m.data(), size);
            at += sizeof size + size;
        }
        Header h{Kind::Bundle};
        h.a = static_cast<std::uint32_t>(count);
        std::memcpy(at, &h, sizeof h);
        if (tracing()) {
            runtime::logger().trace("rank {}: to {}: the last {} as one bundle ({} bytes)", rank, first.peer, count,
                                    bundle.size());
        }
        start_send();
    }
    batch_.clear();  // (frees the parcels of the bundled)
    return true;
}

bool Comm::progress_sends() {
    bool any = false;
    for (std::size_t i = 0; i < sending_.size();) {
        int done = 0;
        MPI_Test(&sending_[i]->request, &done, MPI_STATUS_IGNORE);
        if (!done) {
            ++i;
            continue;
        }
        any = true;
        std::unique_ptr<Sending> sent = std::move(sending_[i]);
        sending_.erase(sending_.begin() + static_cast<std::ptrdiff_t>(i));
        if (std::atomic<bool>* flag = std::exchange(sent->message.sent_flag, nullptr)) {
            flag->store(true, std::memory_order_release);  // (its writer may go on: post_in_place)
            --in_place_sending_;
        }
        sent->message = Outgoing();  // (its parcel or bytes go now)
        if (spare_sends_.size() < spare_sends_.capacity()) spare_sends_.push_back(std::move(sent));
    }
    return any;
}

bool Comm::receive(int most) {
    bool any = false;
    for (int k = 0; k < most; ++k) {
        int flag = 0;
        MPI_Message handle;
        MPI_Status status;
        MPI_Improbe(MPI_ANY_SOURCE, kTag, comm_, &flag, &handle, &status);
        if (!flag) break;
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        const auto n = static_cast<std::size_t>(count);
        Message m;
        m.peer = status.MPI_SOURCE;
        char* into = nullptr;
        if (n <= sizeof received_small_) {
            // (A small one is received here, and its handler copies what it
            // keeps: cheaper than a parcel for every message.)
            into = received_small_;
            m.view = into;
        } else {
            try {
                m.parcel = channels::parcel_new(n);
                into = reinterpret_cast<char*>(m.parcel->data());
            } catch (const std::bad_alloc&) {
                m.bytes = Bytes(n);  // (the handler's take_parcel throws, if the arena stays full)
                into = m.bytes.data();
            }
        }
        MPI_Mrecv(into, count, MPI_BYTE, &handle, &status);
        if (n < sizeof(Header)) {
            runtime::logger().error("csp mpi: a message of {} bytes from rank {} is too short; ignored", count, m.peer);
            continue;
        }
        std::memcpy(&m.head, into + n - sizeof(Header), sizeof(Header));
        if (m.parcel) m.parcel->size = n - sizeof(Header);
        if (m.view) m.view_size = n - sizeof(Header);
        if (m.head.kind == Kind::Bundle) dispatch_bundle(m);
        else dispatch(m);
        any = true;
    }
    return any;
}

void Comm::dispatch_bundle(const Message& bundle) {
    const char* at = bundle.payload();
    const char* const end = at + bundle.payload_size();
    for (std::uint32_t k = 0; k < bundle.header().a; ++k) {
        std::uint32_t size = 0;
        if (end - at < static_cast<std::ptrdiff_t>(sizeof size)) break;
        std::memcpy(&size, at, sizeof size);
        at += sizeof size;
        if (size < sizeof(Header) || end - at < static_cast<std::ptrdiff_t>(size)) break;
        Message m;
        m.peer = bundle.peer;
        std::memcpy(&m.head, at + size - sizeof(Header), sizeof(Header));
        m.view = at;
        m.view_size = size - sizeof(Header);
        dispatch(m);
        at += size;
    }
    if (at != end) runtime::logger().error("csp mpi: a malformed bundle from rank {}; the rest ignored", bundle.peer);
}

void Comm::dispatch(Message& m) {
    if (tracing()) {
        runtime::logger().trace("rank {}: from {}: kind {} chan {} req {:x} a {} b {} ({} bytes)", rank, m.peer,
                                static_cast<unsigned>(m.header().kind), m.header().chan, m.header().req, m.header().a,
                                m.header().b, m.payload_size());
    }
    const Kind kind = m.header().kind;
    if (kind == Kind::Farewell) {
        ++farewells_;
        return;
    }
    if (kind == Kind::View || kind == Kind::Shown) {
        on_view_message(m);
        return;
    }
    if (control(kind)) {
        on_detector_message(m);
        return;
    }
    // (Counted once handled: a rank that reports itself quiet has handled
    // everything it counts as received.)
    struct Count {
        std::atomic<std::uint64_t>& received;
        ~Count() { received.fetch_add(1, std::memory_order_acq_rel); }
    } count{received_};
    switch (kind) {
        case Kind::Result:
        case Kind::Failure:
            on_world_message(m);
            break;
        case Kind::Bye:
            ++byes_;
            break;
        default:
            on_channel_message(m);
            break;
    }
}

bool Comm::idle() noexcept {
    return !inbox_->head.load(std::memory_order_acquire) && unsent_.load(std::memory_order_acquire) == 0 &&
           !channel_replays_pending();
}

bool Comm::finish_proxies() {
    if (!inbox_->head.load(std::memory_order_relaxed)) return false;
    runtime::Parker* p = inbox_->head.exchange(nullptr, std::memory_order_acquire);
    while (p) {
        runtime::Parker* next = p->inbox_next;
        on_proxy_done(p);
        p = next;
    }
    return true;
}

void Comm::nap(std::int64_t quiet_since) noexcept {
    const std::int64_t quiet = now_ns() - quiet_since;
    if (quiet < kHotSpan) {
        sched_yield();
        return;
    }
    // Messages from other ranks do not ring this word: sleep a while,
    // longer the longer nothing happens.
    const std::int64_t span = std::clamp<std::int64_t>(quiet / 8, kFirstNap, kLongestNap);
    auto& word = inbox_->words[0];
    word.store(runtime::kAsleep, std::memory_order_seq_cst);
    bool work = inbox_->head.load(std::memory_order_seq_cst) != nullptr;
    {
        runtime::Locked<runtime::SpinLock> hold(queue_lock_);
        work |= !queue_.empty();
    }
    if (!work && !stopping_.load(std::memory_order_acquire)) runtime::futex_wait(word, runtime::kAsleep, span);
    word.store(runtime::kAwake, std::memory_order_seq_cst);
}

bool Comm::serve(int most) {
    // (Proxies first: a proxy finished by a process here posts its answer,
    // which then goes out in this round, with what the process posted next,
    // in one bundle: the answer is what the other rank waits for.)
    bool busy = finish_proxies();
    busy |= send_queued();
    channels_sent();
    const bool received = receive(most);
    if (received) {
        busy = true;
        after_messages();
    }
    // (A round that received lets the process it woke run first, unless
    // sends pile up, or a writer waits for one sent from its value: the
    // next round, or the next idle one, completes them. An MPI_Test was
    // some 20 ns of each hop of bench/mpi's ping-pong.)
    if (!received || sending_.size() >= kSendsBeforeTest || in_place_sending_ > 0) busy |= progress_sends();
    busy |= channels_tick();
    return busy;
}

bool Comm::serve_turn(int most) noexcept {
    // (A forked csp::multiprocess child has a copy of this object: not its
    // MPI.)
    if (!reachable() || done_) return false;
    return serve(most);
}

void Comm::wait_for_servers(std::int64_t nap) noexcept {
    // Woken by the last server to End, or by stop(); not by posts, which
    // the servers send, nor by a server leaving to run the process it woke
    // (it is back soon: waking for either cost two context switches a
    // message, and spinning here took half the core from the process).
    const std::uint32_t serving = g_servers.load(std::memory_order_seq_cst);
    if (serving > 0 && !stopping_.load(std::memory_order_seq_cst)) runtime::futex_wait(g_servers, serving, nap);
}

void Comm::loop() noexcept {
    // A known thread: it wakes only processes in Remote waits, which the
    // deadlock detector never reports anyway, so it must not veto reports.
    runtime::rt().registry.note_thread(true);
    int idle = 0;
    std::int64_t quiet_since = now_ns();
    std::int64_t server_nap = kFirstServerNap;
    for (;;) {
        if (g_servers.load(std::memory_order_seq_cst) > 0 && !stopping_.load(std::memory_order_acquire)) {
            // Workers serve, or run processes they woke and come back: look
            // only now and then (for one that runs long), with naps that
            // double while nothing is found.
            wait_for_servers(server_nap);
            const bool busy =
                g_servers.load(std::memory_order_seq_cst) > 0 && serve_round(kReceivesPerRound);
            server_nap = busy ? kFirstServerNap : std::min(server_nap * 2, kLongestServerNap);
            idle = 0;
            quiet_since = now_ns();  // (traffic ran: hot)
            continue;
        }
        if (!g_turn.try_lock()) {  // (a worker that stopped serving finishes its round)
            sched_yield();
            continue;
        }
        bool busy = serve(kReceivesPerRound);
        // Ending: once every rank has said Bye (no channel or placement
        // message comes any more), the detector's control messages may
        // still be under way, and one left unreceived at MPI_Finalize hangs
        // it (or is reported by UCX on MPICH). So each rank then says
        // Farewell, the last thing it sends (post drops anything later),
        // and ends once every rank has said it and its sends are done: by
        // MPI's in-order delivery, everything sent to it came before.
        if (stopping_.load(std::memory_order_acquire) && byes_ == size - 1 &&
            !farewell_sent_.load(std::memory_order_relaxed)) {
            for (int r = 0; r < size; ++r) {
                if (r != rank) post(r, Header{Kind::Farewell});
            }
            farewell_sent_.store(true, std::memory_order_release);
            busy = true;
        } else if (farewell_sent_.load(std::memory_order_relaxed) && farewells_ == size - 1 && sending_.empty()) {
            runtime::Locked<runtime::SpinLock> hold(queue_lock_);
            if (queue_.empty()) {
                done_ = true;
                g_turn_comm = nullptr;  // (no worker serves any more)
            }
        }
        if (busy) {
            idle = 0;
            quiet_since = now_ns();
        } else if (!done_ && idle++ == 0) {
            quiet_again();  // (with the turn held: a serving worker answers probes)
        }
        g_turn.unlock();
        if (done_) break;
        if (!busy) nap(quiet_since);
    }
    runtime::rt().registry.note_thread(false);
}

}  // namespace csp::mpi::detail
