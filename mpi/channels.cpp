// channels.cpp: channels shared by ranks (see channels/remote.hpp): which
// rank is a channel's home, replicas that forward to it, and the proxies
// through which the home serves the processes of other ranks.
//
// A channel's home is chosen when the next combinator after it was made
// starts (launching: Parallel, Spawn), by where the processes placed since
// (csp::on_rank, csp::spread) hold its ends among their arguments: the one
// rank where all its readers are placed, else the one rank where all its
// writers are, else rank (id - 1) % size. Values then flow towards their
// readers: a farm's collector on rank 0 reads its results channel there,
// without a round trip to another rank a value (samples/mpi/farm.cpp). Every
// rank evaluates the same placements in the same order (the program is
// SPMD), so every rank chooses the same. Until then the channel is a replica
// everywhere: what would go to its home (its Hello, changes of its ends)
// waits here, and an operation on it from main before that chooses at
// once, by what is placed so far (so a program that uses a shared channel
// from main on some ranks only may diverge). Every rank tells the rank the
// channel's number would make its home (HomeCheck) what it chose; that rank
// stops the job with an error naming the channel if any choice differs from
// its own.
//
// Messages about a channel may reach its home before the home has made it,
// or chosen its home (its main is slower): they wait in `early` and are
// handled, in order, once it has (tick).
//
// Ends are counted for the whole job at the home. An end made in the SPMD
// part (main, outside any process: the arguments of the processes it is
// about to place, say) is made on every rank at the same point of the
// program: the home counts all `size` of them when it makes its own, and
// the other ranks say nothing, so no rank's count is missing while another
// rank's leaves arrive. Every other join, and every leave, is a message to
// the home, stamped with how many SPMD ends of that side its rank had made
// (its epoch); the home applies it only once it has made as many itself,
// so its count never runs ahead of its own place in the program. A side
// retires when that count reaches zero.
//
// Choices across ranks (remote.hpp has the outline): a chooser's guard on a
// replica is first tried at the home (a Read or Write of Way kTry: a proxy
// that is queued and at once taken back if nothing completed it), then,
// once the chooser has parked, offered (Offer). At the home an offer is a
// proxy whose waiter is marked `offer`, known by its ticket, in one of
// three states:
//   Offered    queued; completers pass over it and report it (wanted);
//   Reserving  a partner may be there: the chooser's rank was asked to
//              reserve the choice (Reserve), the answer (Reserved) pending;
//   Held       reserved: the chooser waits for this home's word. The offer
//              is made an ordinary proxy's operation (commit_offer); what it
//              does is sent as a Fire from the reserver. If it would wait,
//              it waits only while an offer on the other side of the
//              channel is being reserved (two choices meeting: the first
//              held waits for the second, which then completes with it);
//              otherwise it is taken back, and the chooser released (a Fire
//              that makes it choose again).
// A proxy that poison or retire ends before it is held is a Fire not from
// the reserver: the chooser's rank applies it only if the choice still
// waits. The chooser's rank withdraws its offers (Withdraw) once its wait
// is over; an offer being reserved then is answered no, and goes.
//
// Extended reads across ranks (channel.hpp, "Extended rendezvous"): a reader
// on another rank asks the home (ExtRead). There a proxy does the extended
// read (offer_extended): it takes the value and holds its writer (or its
// buffer slot), or waits as a probe and looks again when woken. The value
// goes back as Data; the writer stays held, its write not complete, until
// the reader's action is over and the reader says so (ExtDone): then the
// home completes the writer, or, if the action threw, poisons the channel.
// An answer that comes after its reader stopped waiting (a deadlock across
// ranks ended that wait) is given back the same way, as an action that
// threw: the value is not lost silently. An ExtendedInputGuard on a replica
// is tried (ExtRead of way kTry) and offered (Offer, side 2) as any remote
// guard is; its offer, committed, does the extended take and fires with the
// value, and the proxy holds what delivered it until the chooser's ExtDone,
// named by the choice's request (commit_extended).
//
// Barriers across ranks (channels/barrier.hpp): a barrier made in the SPMD
// part has an id (numbered apart from channels) and a home rank, like a
// channel. Each rank's core keeps its own members; the home counts the
// members of the whole job much as it counts a channel's ends (Ends: an
// SPMD end for every rank as the home makes its own, unless that rank is
// behind, RankEnds; every rank says which SPMD ends it made and resigned,
// and sends its other enrols and resigns as BarrierEnds messages stamped
// with its SPMD epoch) and the arrivals of the current phase
// (BarrierArrive, tagged with the phase the member arrived in, one from a
// phase already over being stale, and with the member's epoch: an arrival
// of a member the home does not count yet, enrolled at an epoch it has not
// reached, waits in `held` until it has). When the arrivals make up every
// member (counting the enrols of ranks ahead of the home in the SPMD part
// that it cannot apply yet, but not their resigns: members()), the phase
// is over: every rank gets BarrierPhase and lets its waiting members go.
// Every change, the home's own included, is a message to the home's
// communication thread, which alone ends phases.
// Poison goes to the home and from there to every rank.
//
// Alting barriers across ranks: each rank reports how many choices offer
// the barrier there (BarrierOffers, numbered so that a later report wins).
// When the arrivals and the offers may make up every member, the home runs
// a round: every rank reserves its offers of counted members (their
// choices' words to kReserved) and answers how many (BarrierReserve,
// BarrierReserved). If the arrivals and the reserved offers make up every
// member, the phase is over (BarrierPhase fires the reserved offers too);
// otherwise they are released (BarrierRelease: their choices choose again).
// A rank's offers of members the home does not count yet (`skipped`: past
// the home's epoch as the rank last heard it in a round, which each of its
// offers reports names) stay out of the trigger while the home's epoch is
// still that one.
#include "mpi/comm.hpp"

#include "csp/mpi.hpp"

#include "channels/remote.hpp"
#include "runtime/log.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace csp::mpi::detail {

// (world.cpp) the thread that made the World: channels it makes outside any
// process are the job's.
bool in_spmd_part() noexcept;

namespace {

using channels::ChannelCore;
using channels::Outcome;
using channels::Parcel;
using channels::Side;

std::uint32_t outcome_word(Outcome o) noexcept { return channels::encode(o, 0); }

std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A BarrierEnds message's `a`: an end made in the SPMD part (req: its
// epoch); an SPMD end resigned (req: its epoch); any other enrol or resign
// (b: the change + 1, req: the sender's epoch).
constexpr std::uint32_t kOtherEnd = 0, kSpmdMade = 1, kSpmdResigned = 2;

// kPatience: how long a held offer waits for a partner that may be back
// soon before its choice is released (see Shared::commit).
constexpr std::int64_t kPatience = 2'000'000;  // ns

// kGiveParcelAbove: a remote writer's value larger than this is sent from
// its own parcel (Shared::write); one up to it is copied into its message.
constexpr std::size_t kGiveParcelAbove = 1024;

// InPlace: a remote writer's vector or string (ValueOps::elements), sent
// from where its elements lie when they are more than kSendInPlaceAbove
// bytes (below, packing is cheaper than describing the pieces to MPI).
struct InPlace {
    std::uint64_t count = 0;
    const void* data = nullptr;
    std::size_t bytes = 0;
    std::atomic<bool>* sent = nullptr;  // (Comm::post_in_place)
};
constexpr std::size_t kSendInPlaceAbove = 32 * 1024;

// Proxy: a process of another rank, reading or writing a channel here; or
// the offer of a guard of its choice (`choice`).
struct Proxy : runtime::ProcessRecord {
    int peer = 0;
    std::uint64_t req = 0;
    bool reading = false;
    ChannelCore* chan = nullptr;  // (while queued)
    std::uint32_t epoch = 0;      // its rank's deadlocks when it asked
    // An offer (see "choices across ranks" below):
    bool choice = false;
    enum State : std::uint8_t { Offered, Reserving, Held } state = Offered;
    std::uint32_t index = 0;  // the guard
    std::uint64_t ticket = 0;
    bool finished = false;    // completed (poison, retire) while Reserving: `outcome`
    bool busy_wait = false;   // held, waiting for a partner that may soon be back (see commit)
    channels::Busy waits;     // (that partner, with a reference to its parker)
    std::int64_t held_since = 0;  // (when it began to wait for it)
    Outcome outcome = Outcome::Done;
    // An extended read (ExtRead), and what it holds once its value is sent:
    bool extended = false;
    bool try_only = false;  // (an ExtRead of way kTry: never waits)
    channels::Held held;
    // On Shared's list of queued proxies (see Shared::list_queued):
    bool listed = false;
    Proxy* prev = nullptr;
    Proxy* next = nullptr;
    runtime::Parker* parker = nullptr;
};

Side side_of(const Proxy* x) noexcept { return x->reading ? Side::Reader : Side::Writer; }

int shared_home_by_id(std::uint64_t id) noexcept;  // (g_shared's, below)

class Shared final : public channels::Remote, public channels::Distribution {
public:
    Shared() {
        spare_asked_.reserve(kSpareAsked);
        spent_.reserve(kSpentMost);
    }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;
    ~Shared() {
        for (void* room : spare_proxies_) ::operator delete(room);
    }

    // ---- Distribution -------------------------------------------------------
    void made(ChannelCore* c) noexcept override {
        if (!g_comm || !in_spmd_part()) return;
        // (Only the SPMD part makes shared channels, so ids come in order.)
        const std::uint64_t id = [&] {
            std::lock_guard<std::mutex> hold(lock_);
            return channels_.size() + 1;
        }();
        channels::acquire(c);  // (until the World ends: messages may still name it)
        c->shared_id = id;
        // A replica until its home is chosen (see the top): no fast path,
        // every operation goes through `remote`.
        c->remote = this;
        c->home = nullptr;
        std::lock_guard<std::mutex> hold(lock_);
        channels_.push_back(c);
        ends_.emplace_back();
        homes_.push_back(-1);
        unsettled_[id];
        unsettled_count_.fetch_add(1, std::memory_order_release);
    }

    // placed: a process placed on rank r holds an end of c among its
    // arguments (csp::on_rank, on every rank).
    void placed(const ChannelCore* c, bool reader, int r) noexcept {
        if (!g_comm || !c->shared_id) return;
        std::lock_guard<std::mutex> hold(lock_);
        auto it = unsettled_.find(c->shared_id);
        if (it == unsettled_.end()) return;
        std::vector<int>& at = it->second.ranks[reader ? 0 : 1];
        if (std::find(at.begin(), at.end(), r) == at.end()) at.push_back(r);
    }

    void launching() noexcept override {
        if (!g_comm || unsettled_count_.load(std::memory_order_acquire) == 0 || !in_spmd_part()) return;
        for (;;) {
            std::uint64_t id;
            {
                std::lock_guard<std::mutex> hold(lock_);
                if (unsettled_.empty()) return;
                id = unsettled_.begin()->first;
            }
            settle(id);
        }
    }

    // home_by_id: the home of channel `id` (chosen: it has been used).
    int home_by_id(std::uint64_t id) noexcept {
        std::lock_guard<std::mutex> hold(lock_);
        return homes_[id - 1];
    }

    // home: the home rank of shared channel c, chosen now if it was not yet
    // (an operation from main before any combinator: see the top).
    int home(ChannelCore* c) const noexcept {
        const int h = c->shared_home.load(std::memory_order_acquire);
        if (h >= 0) return h;
        const_cast<Shared*>(this)->settle(c->shared_id);
        return c->shared_home.load(std::memory_order_acquire);
    }

    // settle: choose the home of channel `id` (if nobody has yet), and do
    // what waited for it: here, the channel crosses and counts the ends of
    // every rank; elsewhere, the home hears of it (Hello) and of its ends'
    // changes so far. Messages for it wait (early) until c->shared_home is
    // set, last.
    void settle(std::uint64_t id) noexcept {
        std::unique_lock<std::mutex> hold(lock_);
        if (id == 0 || id > channels_.size()) return;  // (the World is over)
        auto it = unsettled_.find(id);
        if (it == unsettled_.end()) {
            // (Being settled by another thread: wait for it.)
            ChannelCore* c = channels_[id - 1];
            hold.unlock();
            while (c->shared_home.load(std::memory_order_acquire) < 0) std::this_thread::yield();
            return;
        }
        Unsettled u = std::move(it->second);
        unsettled_.erase(it);
        ChannelCore* c = channels_[id - 1];
        const int h = u.ranks[0].size() == 1   ? u.ranks[0][0]
                      : u.ranks[1].size() == 1 ? u.ranks[1][0]
                                               : default_home(id);
        homes_[id - 1] = h;
        const bool here = h == g_comm->rank;
        if (const int judge = default_home(id); judge != g_comm->rank) {
            Header check{Kind::HomeCheck};
            check.chan = id;
            check.a = static_cast<std::uint32_t>(h);
            g_comm->post(judge, check, identity(c).data(), identity(c).size());
        } else {
            for (const Message& m : checks_[id]) check_home(c, m, h);
            checks_.erase(id);
        }
        if (!here) {
            if (auto e = early_.find(id); e != early_.end() && !e->second.empty()) {
                const auto hello = std::find_if(e->second.begin(), e->second.end(),
                                                [](const Message& m) { return m.header().kind == Kind::Hello; });
                homes_differ(c, hello != e->second.end() ? *hello : e->second.front(), g_comm->rank, h);
            }
            g_comm->post(h, Header{Kind::Hello, 0, 0, 0, id, 0}, identity(c).data(), identity(c).size());
        }
        bool retire[2] = {false, false};
        for (const EndsEvent& ev : u.ends) {
            retire[static_cast<int>(ev.side)] |= count_ends(id, ev.side, ev.delta, ev.spmd, ev.epoch);
        }
        runtime::logger().debug("rank {}: channel '{}' ({}): its home is rank {} (readers placed on {} ranks, "
                                "writers on {})",
                                g_comm->rank, c->name, id, h, u.ranks[0].size(), u.ranks[1].size());
        if (here) {
            // (Ready before messages may reach it: they wait in early_ until
            // shared_home is set.)
            hold.unlock();
            channels::mark_cross(c);  // (values travel as parcels: proxies are another OS process's waiters)
            c->home = runtime::local_inbox();
            c->remote = nullptr;
            hold.lock();
            if (early_.count(id)) {
                ready_early_.push_back(id);
                any_ready_early_.store(true, std::memory_order_release);
            }
        }
        c->shared_home.store(h, std::memory_order_release);
        unsettled_count_.fetch_sub(1, std::memory_order_release);
        hold.unlock();
        if (here) runtime::ring(g_comm->inbox());  // (tick replays what came early)
        for (int side = 0; side < 2; ++side) {
            if (retire[side]) channels::retire_side(c, static_cast<Side>(side));
        }
    }

    // count_ends: an end of side `side` of channel `id` joined or left here
    // (delta), made in the SPMD part (spmd) as this rank's epoch-th: counted
    // at the home, here, or told to it. True when that side retires (lock_
    // held).
    bool count_ends(std::uint64_t id, Side side, int delta, bool spmd, std::uint64_t epoch) noexcept {
        const int h = homes_[id - 1];
        Ends& e = ends_[id - 1][static_cast<int>(side)];
        if (h == g_comm->rank) return change(e, spmd ? g_comm->size : delta);
        if (!spmd) {
            Header m{Kind::Ends};
            m.chan = id;
            m.a = static_cast<std::uint32_t>(side);
            m.b = static_cast<std::uint32_t>(delta + 1);
            m.req = epoch;
            g_comm->post(h, m);
        }
        return false;
    }

    // check_home: rank m.peer chose rank m.a for the home of c, which this
    // rank (its default home) placed on rank h (lock_ held).
    static void check_home(const ChannelCore* c, const Message& m, int h) noexcept {
        if (static_cast<int>(m.header().a) != h) homes_differ(c, m, static_cast<int>(m.header().a), h);
    }

    // home_checked: a HomeCheck (see the top): now, or once this rank has
    // chosen too.
    void home_checked(Message& m) {
        const std::uint64_t id = m.header().chan;
        std::lock_guard<std::mutex> hold(lock_);
        if (id == 0 || id > channels_.size() || homes_[id - 1] < 0) {
            checks_[id].push_back(std::move(m));
            return;
        }
        check_home(channels_[id - 1], m, homes_[id - 1]);
    }

    // shown: a channel's identity (see identity) as 'name' (values of type T).
    static std::string shown(const std::string& s) {
        const std::size_t split = s.find('\0');
        if (split == std::string::npos) return "'" + s + "'";
        int status = 0;
        char* type = abi::__cxa_demangle(s.c_str() + split + 1, nullptr, nullptr, &status);
        const std::string out = fmt::format("'{}' (values of type {})", s.substr(0, split),
                                            status == 0 && type ? type : s.c_str() + split + 1);
        std::free(type);
        return out;
    }

    // homes_differ: rank m.peer chose rank `theirs` for the home of c (m:
    // its message about it; a Hello or a HomeCheck names the channel as that
    // rank made it), where this rank chose rank h: the ranks' programs differ.
    [[noreturn]] static void homes_differ(const ChannelCore* c, const Message& m, int theirs, int h) noexcept {
        std::string made;
        if (m.header().kind == Kind::Hello || m.header().kind == Kind::HomeCheck) {
            made = ", which it made as " + shown(std::string(m.payload(), m.payload_size()));
        }
        runtime::log_fatal(fmt::format("csp mpi: rank {} chose rank {} for the home of channel {} of the job{}; "
                                       "rank {} made it as {} and chose rank {}: every rank must make the same "
                                       "channels (outside any process, after the World) in the same order, place the "
                                       "same processes, and use a channel from main before any Parallel on every "
                                       "rank or on none",
                                       m.peer, theirs, c->shared_id, made, g_comm->rank, shown(identity(c)), h)
                               .c_str());
    }

    // replays_pending: messages that came early wait to be handled (tick).
    bool replays_pending() {
        if (!busy_.empty()) return true;  // (whoever holds the turn's: comm.cpp)
        {
            std::lock_guard<std::mutex> hold(wanted_lock_);
            if (!wanted_.empty()) return true;
        }
        std::lock_guard<std::mutex> hold(lock_);
        return !ready_early_.empty();
    }

    // ---- Remote --------------------------------------------------------------
    // (From a csp::multiprocess child, which cannot reach the other ranks, a
    // read or write is Unsupported: a UsageError naming the channel.)
    Outcome read(ChannelCore* c, void* dst) const noexcept override {
        if (!g_comm->reachable()) return Outcome::Unsupported;
        Pending pending;
        Header h{Kind::Read};
        h.chan = c->shared_id;
        const Outcome o = wait(c, Side::Reader, pending, h, nullptr);
        if (o != Outcome::Done) {
            // (A value can have come as the deadlock breaker won this wait:
            // answer() fills `got` under asked_lock_, which wait() takes too.)
            channels::parcel_free(pending.got);
            return o;
        }
        return unpacked(c, pending.got, dst);
    }

    // unpacked: the value that came (freed) into *dst.
    static Outcome unpacked(ChannelCore* c, Parcel* got, void* dst) noexcept {
        const bool ok = got && c->ops->unpack && c->ops->unpack(got, dst);
        channels::parcel_free(got);
        if (!ok) {
            runtime::logger().error("channel '{}': a value from another rank could not be unpacked; poisoning it",
                                    c->name);
            channels::poison(c);
            return Outcome::Poisoned;
        }
        return Outcome::Done;
    }

    Outcome write(ChannelCore* c, void* src) const noexcept override {
        if (!g_comm->reachable()) return Outcome::Unsupported;
        Pending pending;
        Header h{Kind::Write};
        h.chan = c->shared_id;
        if (c->ops->elements) {
            // A large vector or string goes from where it lies: not packed,
            // not copied. It stays there until MPI is done with it, which is
            // usually so by the time the answer comes; a wait that a
            // deadlock across ranks ended may end before the message has
            // even left (Comm::post_in_place).
            InPlace in_place;
            in_place.data = c->ops->elements(src, &in_place.count, &in_place.bytes);
            if (in_place.bytes > kSendInPlaceAbove) {
                std::atomic<bool> sent{false};
                in_place.sent = &sent;
                const Outcome o = wait(c, Side::Writer, pending, h, nullptr, false, &in_place);
                while (!sent.load(std::memory_order_acquire)) runtime::sleep_for(std::chrono::microseconds(20));
                return o;
            }
        }
        // (A small trivially copyable value is packed as its bytes, as
        // pack_value does, into a parcel on this stack: no arena allocation.)
        channels::InlineParcel room;
        const bool small = c->ops->pack && c->ops->trivial && c->ops->size <= channels::InlineParcel::kBytes;
        Parcel* value = small ? channels::inline_parcel(room, src, c->ops->size)
                        : c->ops->pack ? c->ops->pack(src)
                                       : nullptr;
        if (!value) return Outcome::Unpackable;
        // A large value's parcel goes to the communication thread, which
        // sends from it (no copy; BENCHMARKS.md, mpi: a 1 MiB value was
        // copied once more here); a small one is copied into its message,
        // which may then go in a bundle, and freed here.
        if (value->size > kGiveParcelAbove && channels::parcel_own(value)) {
            return wait(c, Side::Writer, pending, h, value, true);
        }
        const Outcome o = wait(c, Side::Writer, pending, h, value);
        channels::parcel_free(value);
        return o;
    }

    Outcome read_extended(ChannelCore* c, void* dst, channels::Held* held) const noexcept override {
        return extended(c, dst, held, false);
    }

    Outcome try_read_extended(ChannelCore* c, void* dst, channels::Held* held) const noexcept override {
        return extended(c, dst, held, true);
    }

    // extended: an extended read at the home (a try: only if a value is
    // within reach now, else kNotReady).
    Outcome extended(ChannelCore* c, void* dst, channels::Held* held, bool try_only) const noexcept {
        *held = {};
        if (!g_comm->reachable()) return Outcome::Unsupported;
        Pending pending;
        Header h{Kind::ExtRead};
        h.chan = c->shared_id;
        if (try_only) h.pad = kTry;
        const Outcome o = wait(c, Side::Reader, pending, h, nullptr);
        if (o != Outcome::Done) {
            // (A value that came as the deadlock breaker won this wait: the
            // home holds its writer; let it go as if the action threw.)
            if (pending.got) ext_done(c->shared_id, pending.req, false);
            channels::parcel_free(pending.got);
            return o;
        }
        held->remote = pending.req;
        const Outcome u = unpacked(c, pending.got, dst);
        if (u != Outcome::Done) {
            // (unpacked poisoned the channel; the home lets its writer go.)
            end_extended(c, held, false);
            held->remote = 0;
        }
        return u;
    }

    void end_extended(ChannelCore* c, const channels::Held* held, bool ok) const noexcept override {
        ext_done(c->shared_id, held->remote, ok);
    }

    static void ext_done(std::uint64_t chan, std::uint64_t req, bool ok) noexcept {
        Header h{Kind::ExtDone};
        h.chan = chan;
        h.req = req;
        h.a = ok ? 1 : 0;
        g_comm->post(shared_home_by_id(chan), h);
    }

    // poison: done once the home has poisoned the channel (its answer), as
    // a poison in one OS process is done when poison() returns, so that
    // whatever the poisoner does next comes after it on every rank. A
    // process that poisons `data`, then `stop`, relies on it: one woken on
    // another rank by stop's poison must find data poisoned, not retired by
    // its own end leaving (MPI keeps the order between two ranks only: that
    // end's message could pass the poison on the way to data's home).
    void poison(ChannelCore* c) const noexcept override {
        if (!g_comm->reachable()) return;  // (a multiprocess child: its parent poisons what it handed it)
        Header h{Kind::Poison};
        h.chan = c->shared_id;
        if (!runtime::in_fiber() && !runtime::known_thread_parker()) {
            // (From a thread that is not a csp process, such as the helper
            // that forks a csp::multiprocess and poisons what a refused child
            // was handed (csp/multiprocess.cpp, refuse): told and not waited
            // for. To wait, it would become a known thread, counted as
            // running for as long as it lives: a pooled helper lives on, and
            // its rank would never look quiet to the deadlock detector again.)
            g_comm->post(home(c), h);
            return;
        }
        Pending pending;
        (void)wait(c, Side::Writer, pending, h, nullptr);
    }

    Outcome try_read(ChannelCore* c, void* dst) const noexcept override {
        if (!g_comm->reachable()) return Outcome::Unsupported;
        Pending pending;
        Header h{Kind::Read};
        h.chan = c->shared_id;
        h.pad = kTry;
        const Outcome o = wait(c, Side::Reader, pending, h, nullptr);
        if (o != Outcome::Done) {
            channels::parcel_free(pending.got);
            return o;
        }
        return unpacked(c, pending.got, dst);
    }

    Outcome try_write(ChannelCore* c, const Parcel* value) const noexcept override {
        if (!g_comm->reachable()) return Outcome::Unsupported;
        Pending pending;
        Header h{Kind::Write};
        h.chan = c->shared_id;
        h.pad = kTry;
        return wait(c, Side::Writer, pending, h, value);
    }

    bool retired(ChannelCore* c, Side side) const noexcept override {
        if (!g_comm->reachable()) return false;
        Pending pending;
        Header h{side == Side::Reader ? Kind::Read : Kind::Write};
        h.chan = c->shared_id;
        h.pad = kProbe;
        return wait(c, side, pending, h, nullptr) == Outcome::Retired;
    }

    void open(channels::RemoteChoice& rc) const noexcept override {
        runtime::Locked<runtime::SpinLock> hold(asked_lock_);
        rc.req = ++last_request_;
        choices_[rc.req] = &rc;
    }

    void offer(channels::RemoteChoice& rc, ChannelCore* c, Side side, std::uint32_t index, const Parcel* value,
               bool extended) const noexcept override {
        Header h{Kind::Offer};
        h.chan = c->shared_id;
        h.req = rc.req;
        h.a = index;
        h.b = g_comm->deadlocks();
        h.pad = side == Side::Reader ? (extended ? 2 : 0) : 1;
        const int to = home(c);
        rc.homes |= std::uint64_t{1} << (to % 64);
        if (value) g_comm->post(to, h, value->data(), value->size);
        else g_comm->post(to, h);
    }

    void close(channels::RemoteChoice& rc) const noexcept override {
        {
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            choices_.erase(rc.req);
        }
        Header h{Kind::Withdraw};
        h.req = rc.req;
        for (int r = 0; r < g_comm->size; ++r) {
            if (rc.homes & (std::uint64_t{1} << (r % 64))) g_comm->post(r, h);
        }
    }

    void wanted(runtime::Parker* p) noexcept override {
        // (Under the offer's channel lock: the proxy is alive.)
        const std::uint64_t ticket = static_cast<Proxy*>(runtime::record_of(p))->ticket;
        {
            std::lock_guard<std::mutex> hold(wanted_lock_);
            wanted_.push_back(ticket);
            any_wanted_.store(true, std::memory_order_release);
        }
        runtime::ring(g_comm->inbox());
    }

    void ends_changed(ChannelCore* c, Side side, int delta) noexcept override {
        if (!g_comm->reachable()) return;  // (a multiprocess child's copies: its parent holds the ends it counted)
        const std::uint64_t id = c->shared_id;
        const bool spmd = delta > 0 && in_spmd_part();
        bool retire = false;
        {
            std::lock_guard<std::mutex> hold(lock_);
            Ends& e = ends_[id - 1][static_cast<int>(side)];
            if (spmd) ++e.spmd;
            auto it = unsettled_.find(id);
            if (it != unsettled_.end()) {
                it->second.ends.push_back(EndsEvent{side, delta, spmd, e.spmd});  // (counted once it has a home)
                return;
            }
            retire = count_ends(id, side, delta, spmd, e.spmd);
        }
        if (retire) channels::retire_side(c, side);
    }

    // ---- barriers across ranks (see the top) ----------------------------------------
    void barrier_made(channels::BarrierCore* b) noexcept override {
        if (!g_comm || !in_spmd_part()) return;
        channels::barrier_acquire(b);  // (until the World ends: messages may still name it)
        std::uint64_t id;
        {
            std::lock_guard<std::mutex> hold(lock_);
            id = barriers_.size() + 1;
            b->shared_id = id;
            barriers_.emplace_back().core = b;
            if (early_.count(id | kBarrierBit)) {
                ready_early_.push_back(id | kBarrierBit);
                any_ready_early_.store(true, std::memory_order_release);
            }
        }
        if (default_home(id) == g_comm->rank) {
            runtime::ring(g_comm->inbox());  // (tick replays what came early)
        } else {
            Header h{Kind::BarrierHello};
            h.chan = id | kBarrierBit;
            g_comm->post(default_home(id), h, b->name, std::strlen(b->name));
        }
    }

    std::uint64_t barrier_ends_changed(channels::BarrierCore* b, int delta, std::uint64_t member) noexcept override {
        if (!g_comm->reachable()) return 0;  // (a multiprocess child's copies: its parent counted them)
        const std::uint64_t id = b->shared_id;
        const bool spmd = delta > 0 && in_spmd_part();
        // (The epoch: this rank's SPMD ends of b so far. b's own count, read
        // by its members as they arrive, too: see barrier_arrived.)
        const std::uint64_t epoch = spmd ? b->spmd_ends.fetch_add(1, std::memory_order_acq_rel) + 1
                                         : b->spmd_ends.load(std::memory_order_acquire);
        // (The member's epoch: an SPMD end's is its own; any other enrol the
        // home counts from its message on, members(), so 0: see at_barrier.)
        const std::uint64_t member_epoch = spmd ? epoch : 0;
        Header h{Kind::BarrierEnds};
        h.chan = id | kBarrierBit;
        if (spmd) {
            h.a = kSpmdMade;  // (made here: the home counts it, see RankEnds)
        } else if (delta < 0 && member > 0) {
            h.a = kSpmdResigned;  // (the SPMD end `member` of this rank)
        } else {
            h.a = kOtherEnd;
        }
        h.b = static_cast<std::uint32_t>(delta + 1);
        h.req = delta < 0 && member > 0 ? member : epoch;
        g_comm->post(default_home(id), h);
        return member_epoch;
    }

    void barrier_arrived(std::uint64_t id, std::uint64_t phase, std::uint64_t epoch, int delta) noexcept override {
        Header h{Kind::BarrierArrive};
        h.chan = id | kBarrierBit;
        h.req = phase;
        h.a = static_cast<std::uint32_t>(delta + 1);
        put64(h, epoch);
        g_comm->post(default_home(id), h);
    }

    // put64 / get64: a 64-bit number in a header's b (low half) and pad.
    static void put64(Header& h, std::uint64_t v) noexcept {
        h.b = static_cast<std::uint32_t>(v);
        h.pad = static_cast<std::uint32_t>(v >> 32);
    }
    static std::uint64_t get64(const Header& h) noexcept { return (std::uint64_t{h.pad} << 32) | h.b; }

    void barrier_offers(const channels::BarrierCore* b, std::uint64_t phase, std::int64_t count, std::int64_t ahead,
                        std::uint64_t seq) noexcept override {
        if (!g_comm->reachable()) return;
        Header h{Kind::BarrierOffers};
        h.chan = b->shared_id | kBarrierBit;
        h.req = phase;
        h.a = static_cast<std::uint32_t>(count);
        put64(h, seq);
        // (Of them, the offers of members past the home's epoch as this
        // rank last heard it, and that epoch: see at_barrier.)
        const std::uint64_t ahead_of[2] = {static_cast<std::uint64_t>(ahead), b->home_epoch};
        g_comm->post(default_home(b->shared_id), h, ahead_of, sizeof ahead_of);
    }

    std::uint64_t channel_key(const void* c) const noexcept override {
        // (Not in a forked child, which must never take a private lock it
        // inherited: it may have been held at the fork. The child cannot use
        // a shared channel anyway.)
        if (!Comm::g_forked.load(std::memory_order_relaxed)) {
            std::lock_guard<std::mutex> hold(lock_);
            const auto it = std::find(channels_.begin(), channels_.end(), c);
            if (it != channels_.end()) return (static_cast<std::uint64_t>(it - channels_.begin()) + 1) | (std::uint64_t{1} << 63);
        }
        // (User-space addresses stay below 2^47: bits 56-62 are free for the rank.)
        const auto rank = static_cast<std::uint64_t>(keyed_rank() + 1) & 0x7F;
        return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(c)) ^ (rank << 56);
    }

    std::vector<std::pair<std::string, std::string>> view_ranks(std::vector<std::pair<std::string, std::string>> own,
                                                               std::chrono::milliseconds wait) override {
        return detail::view_ranks(std::move(own), wait);  // (view.cpp)
    }

    void barrier_poisoned(channels::BarrierCore* b) noexcept override {
        if (!g_comm->reachable()) return;
        Header h{Kind::BarrierPoison};
        h.chan = b->shared_id | kBarrierBit;
        g_comm->post(default_home(b->shared_id), h);
    }

    channels::BarrierCore* barrier_core(std::uint64_t id) {
        std::lock_guard<std::mutex> hold(lock_);
        return barriers_[id - 1].core;
    }

    // to_others: h to every rank but this one.
    static void to_others(const Header& h) {
        for (int r = 0; r < g_comm->size; ++r) {
            if (r != g_comm->rank) g_comm->post(r, h);
        }
    }

    // at_barrier: a message about barrier `id` (made here).
    void at_barrier(std::uint64_t id, const Message& m) {
        const Header& h = m.header();
        channels::BarrierCore* core = nullptr;
        std::uint64_t ended = 0;
        bool end_phase = false, poison = false;
        // (Messages from the home to this rank's own core.)
        switch (h.kind) {
            case Kind::BarrierReserve: {
                core = barrier_core(id);
                Header out{Kind::BarrierReserved};
                out.chan = id | kBarrierBit;
                out.req = h.req;
                out.a = h.a;
                std::int64_t skipped = 0;
                out.b = static_cast<std::uint32_t>(channels::barrier_reserve_round(core, h.req, get64(h), &skipped));
                out.pad = static_cast<std::uint32_t>(skipped);
                g_comm->post(m.peer, out);
                return;
            }
            case Kind::BarrierRelease:
                return channels::barrier_release_round(barrier_core(id));
            default:
                break;
        }
        bool release = false, commit = false;
        {
            std::lock_guard<std::mutex> hold(lock_);
            BarrierState& st = barriers_[id - 1];
            core = st.core;
            switch (h.kind) {
                case Kind::BarrierHello: {
                    const std::string theirs(m.payload(), m.payload_size());
                    if (theirs != core->name) {
                        runtime::log_fatal(fmt::format(
                            "csp mpi: barrier {} of the job is '{}' on rank {}, but '{}' on rank {}: every rank must "
                            "make the barriers it shares (outside any process, after the World) in the same order",
                            id, theirs, m.peer, core->name, g_comm->rank).c_str());
                    }
                    return;
                }
                case Kind::BarrierEnds:
                    if (h.a == kSpmdMade) {
                        const bool epoch_moves = m.peer == g_comm->rank;
                        spmd_made(st, m.peer, h.req);
                        if (epoch_moves) {
                            (void)change(st.ends, 0);  // (and the other ends of ranks ahead, made up to here)
                            for (Offers& o : st.offers) o.skipped = 0;  // (offers of members it may count now)
                        }
                    } else if (h.a == kSpmdResigned) {
                        spmd_resigned(st, m.peer, h.req);
                    } else {
                        st.ends.later.emplace(h.req, static_cast<std::int64_t>(h.b) - 1);
                        (void)change(st.ends, 0);
                        other_end(st, m.peer, static_cast<std::int64_t>(h.b) - 1);
                    }
                    // Arrivals of members it counts now.
                    while (!st.held.empty() && st.held.begin()->first <= st.ends.spmd) {
                        st.arrivals += st.held.begin()->second;
                        st.held.erase(st.held.begin());
                    }
                    break;
                case Kind::BarrierArrive: {
                    if (h.req != st.phase || st.poisoned) return;  // (stale: that phase is over)
                    const std::int64_t delta = static_cast<std::int64_t>(h.a) - 1;
                    // A member enrolled at an epoch the home has not reached
                    // is not counted yet: nor is its arrival, until then.
                    if (get64(h) <= st.ends.spmd) st.arrivals += delta;
                    else st.held.emplace(get64(h), delta);
                    break;
                }
                case Kind::BarrierOffers: {
                    if (st.offers.empty()) st.offers.resize(static_cast<std::size_t>(g_comm->size));
                    Offers& o = st.offers[static_cast<std::size_t>(m.peer)];
                    if (get64(h) <= o.seq) return;  // (an older report, overtaken)
                    o.seq = get64(h);
                    o.count = h.req == st.phase ? static_cast<std::int64_t>(h.a) : 0;
                    // The offers of members the home does not count yet:
                    // those past its epoch, if the rank knew it (from the
                    // last round there); if not, none (a round finds them).
                    std::uint64_t ahead_of[2] = {0, 0};
                    if (m.payload_size() == sizeof ahead_of) std::memcpy(ahead_of, m.payload(), sizeof ahead_of);
                    o.skipped = ahead_of[1] == st.ends.spmd ? static_cast<std::int64_t>(ahead_of[0]) : 0;
                    break;
                }
                case Kind::BarrierReserved:
                    if (!st.round || h.a != st.rounds) return;
                    st.reserved += static_cast<std::int64_t>(h.b);
                    // (Skipped against the epoch the round asked with: none,
                    // if the home has moved past it since.)
                    if (!st.offers.empty()) {
                        st.offers[static_cast<std::size_t>(m.peer)].skipped =
                            st.round_epoch == st.ends.spmd ? static_cast<std::int64_t>(h.pad) : 0;
                    }
                    if (++st.answers < st.asked) return;
                    st.round = false;
                    // Every rank has answered: the phase ends with the offers
                    // reserved (every member is there: one enrolled since was
                    // counted before its rank's answer came), or they are
                    // released.
                    if (!st.poisoned && st.arrivals + st.reserved >= members(st) && members(st) > 0) {
                        commit = true;
                    } else {
                        // (Each rank reports its offers again once released;
                        // offers of members the home does not count yet
                        // stay left out, `skipped`, while the home's epoch
                        // is the same: they would only start the same round
                        // again.)
                        release = true;
                        for (Offers& o : st.offers) o.count = 0;
                    }
                    break;
                case Kind::BarrierPhase:
                    ended = h.req;
                    end_phase = true;
                    break;
                case Kind::BarrierPoison:
                    if (default_home(id) == g_comm->rank) {
                        if (st.poisoned) return;
                        st.poisoned = true;
                        Header out{Kind::BarrierPoison};
                        out.chan = id | kBarrierBit;
                        to_others(out);
                    }
                    poison = true;
                    break;
                default:
                    return;
            }
            // The home: is the phase over?
            const std::int64_t needed = members(st);
            const bool ready = !end_phase && !poison && !release && default_home(id) == g_comm->rank && !st.poisoned &&
                               !st.round && needed > 0;
            std::int64_t offered = 0;
            for (const Offers& o : st.offers) offered += std::max<std::int64_t>(o.count - o.skipped, 0);
            if (commit || (ready && st.arrivals >= needed)) {
                ended = st.phase++;
                st.arrivals = 0;
                st.held.clear();  // (those members go on with their ranks' phase end)
                for (Offers& o : st.offers) o = {o.seq, 0, 0};  // (each rank tells its offers left anew)
                end_phase = true;
                Header out{Kind::BarrierPhase};
                out.chan = id | kBarrierBit;
                out.req = ended;
                to_others(out);
            } else if (ready && offered > 0 && st.arrivals + offered >= needed) {
                // The offers may end the phase: reserve them (each rank that
                // has some answers how many it reserved).
                st.round = true;
                ++st.rounds;
                st.answers = 0;
                st.asked = 0;
                st.reserved = 0;
                Header out{Kind::BarrierReserve};
                out.chan = id | kBarrierBit;
                out.req = st.phase;
                out.a = st.rounds;
                put64(out, st.ends.spmd);  // (the offers of members it counts)
                st.round_epoch = st.ends.spmd;
                for (int r = 0; r < g_comm->size; ++r) {
                    if (st.offers[static_cast<std::size_t>(r)].count - st.offers[static_cast<std::size_t>(r)].skipped <= 0) {
                        continue;
                    }
                    ++st.asked;
                    g_comm->post(r, out);
                }
            }
            if (release) {
                // (The home's own at once: a phase end it decides later must
                // not find them still reserved.)
                Header out{Kind::BarrierRelease};
                out.chan = id | kBarrierBit;
                out.req = st.phase;
                out.a = st.rounds;
                to_others(out);
            }
        }
        if (release) channels::barrier_release_round(core);
        if (poison) channels::barrier_poisoned_elsewhere(core);
        if (end_phase) channels::barrier_end_phase(core, ended);
    }

    // ---- the communication thread (or a worker in its turn: comm.cpp) ----------
    void handle(Message& m) {
        const Header& h = m.header();
        if (h.chan & kBarrierBit) {
            const std::uint64_t id = h.chan & ~kBarrierBit;
            {
                std::lock_guard<std::mutex> hold(lock_);
                if (id == 0 || id > barriers_.size() || early_.count(h.chan)) {
                    early_[h.chan].push_back(std::move(m));
                    return;
                }
            }
            return at_barrier(id, m);
        }
        switch (h.kind) {
            case Kind::Data:
            case Kind::Done:
            case Kind::Failed:
                answer(m);
                return;
            case Kind::Reserve:
                return reserve_here(m);
            case Kind::Fire:
                return fire_here(m);
            case Kind::Reserved:
                return on_reserved(m);
            case Kind::Withdraw:
                return withdraw(m.peer, h.req);
            case Kind::HomeCheck:
                return home_checked(m);
            default:
                break;
        }
        // A message for the home of h.chan: now, or once it has the channel
        // and has chosen its home.
        ChannelCore* c = nullptr;
        {
            std::lock_guard<std::mutex> hold(lock_);
            if (h.chan == 0 || h.chan > channels_.size() || early_.count(h.chan) ||
                channels_[h.chan - 1]->shared_home.load(std::memory_order_acquire) < 0) {
                early_[h.chan].push_back(std::move(m));
                return;
            }
            c = channels_[h.chan - 1];
        }
        if (const int h_home = c->shared_home.load(std::memory_order_acquire); h_home != g_comm->rank) {
            homes_differ(c, m, g_comm->rank, h_home);
        }
        at_home(c, m);
    }

    bool tick() {
        bool busy = drain_wanted();
        busy |= look_again();
        // (Every round of the turn's holder comes here: a look at a flag
        // first, not a lock.)
        if (!any_ready_early_.load(std::memory_order_acquire)) return busy;
        std::vector<std::uint64_t> ids;
        {
            std::lock_guard<std::mutex> hold(lock_);
            any_ready_early_.store(false, std::memory_order_relaxed);
            if (ready_early_.empty()) return busy;
            ids.swap(ready_early_);
        }
        for (std::uint64_t id : ids) {
            std::vector<Message> waiting;
            ChannelCore* c = nullptr;
            {
                std::lock_guard<std::mutex> hold(lock_);
                waiting = std::move(early_[id]);
                early_.erase(id);
                if (!(id & kBarrierBit)) c = channels_[id - 1];
            }
            for (Message& m : waiting) {
                if (c) at_home(c, m);
                else at_barrier(id & ~kBarrierBit, m);
            }
        }
        return true;
    }

    void proxy_done(runtime::Parker* p) noexcept {
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        unlist_queued(x);
        if (x->choice) return offer_done(p, x);
        const Outcome o = channels::outcome_part(runtime::outcome_of(p));
        if (x->extended) {
            p->completer_lock = nullptr;
            if (x->epoch < epoch_seen_) {
                // (Its reader's wait was ended by a deadlock. A wake it got
                // goes to the next probe: one is woken per value.)
                if (o == Outcome::Done) channels::pass_on_wake(x->chan);
                return drop_proxy(p);
            }
            if (o == Outcome::Done) return serve_extended(p, x->try_only);  // (a value may be within reach: look again)
            reply(x->peer, x->req, o);
            return drop_proxy(p);
        }
        channels::Waiter* w = channels::proxy_waiter(p);
        Parcel* value = std::exchange(w->parcel, nullptr);
        if (x->reading && o == Outcome::Done) {
            reply_data(x->peer, x->req, value);  // (a reader's: it takes it)
        } else {
            reply(x->peer, x->req, o);
            channels::parcel_free(value);  // (a writer's nobody took)
        }
        p->completer_lock = nullptr;
        // (Freed once this round has sent what it posted, the answer above
        // among it: freeing first was some 40 ns of each hop of bench/mpi
        // before its answer left.)
        if (spent_.size() < spent_.capacity()) spent_.push_back(p);
        else drop_proxy(p);
    }

    // free_spent: the proxies proxy_done answered this round go (whoever
    // holds the turn, once the round's sends are out: Comm::serve).
    void free_spent() noexcept {
        for (runtime::Parker* p : spent_) drop_proxy(p);
        spent_.clear();
    }

    // forget_before: a deadlock across ranks has been declared, the
    // `deadlocks`-th: every request made before it belongs to a process
    // whose wait that deadlock ends (on its own rank, when the news gets
    // there). Offers still queued for them are taken back, so that nobody
    // who runs again afterwards hands them a value (lost) or takes one from
    // them (its writer was told it failed). (Communication thread.)
    void forget_before(std::uint32_t deadlocks) noexcept {
        if (deadlocks <= epoch_seen_) return;
        epoch_seen_ = deadlocks;
        for (Proxy* x = queued_; x;) {
            Proxy* const next = x->next;
            runtime::Parker* p = x->parker;
            if (x->epoch < deadlocks &&
                channels::cancel_proxy(x->chan, x->reading ? Side::Reader : Side::Writer, p)) {
                unlist_queued(x);
                p->completer_lock = nullptr;
                drop_proxy(p);
            }
            // (else completed meanwhile: proxy_done answers it)
            x = next;
        }
    }

    void release_all() noexcept {
        free_spent();
        // (Nothing is held by now: every reader said ExtDone before its
        // process ended, and the ranks have quiesced.)
        for (auto& [key, p] : holding_) {
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            channels::end_extended(x->chan, &x->held, false);
            drop_proxy(p);
        }
        holding_.clear();
        std::vector<ChannelCore*> held;
        std::vector<BarrierState> barriers;
        {
            std::lock_guard<std::mutex> hold(lock_);
            held.swap(channels_);
            barriers.swap(barriers_);
            early_.clear();
            checks_.clear();
            ends_.clear();  // (the next World numbers its channels from 1 again)
            homes_.clear();
            unsettled_.clear();
            unsettled_count_.store(0, std::memory_order_release);
        }
        for (ChannelCore* c : held) channels::release(c);
        for (BarrierState& st : barriers) channels::barrier_release(st.core);
    }

private:
    // identity: what every rank must agree a channel is: its name and its
    // values' type.
    static std::string identity(const ChannelCore* c) {
        std::string id(c->name);
        id.push_back('\0');
        id.append(c->ops->type_name);
        return id;
    }

    // default_home: a channel's home when its placements choose none (see
    // the top), and every barrier's.
    static int default_home(std::uint64_t id) noexcept {
        return static_cast<int>((id - 1) % static_cast<std::uint64_t>(g_comm->size));
    }

    // wait: post h (with `value`) once the caller has parked, and wait for
    // the answer. `give`: value is the caller's own parcel, handed to the
    // communication thread with the message (post_parcel).
    Outcome wait(ChannelCore* c, Side side, Pending& pending, Header h, const Parcel* value, bool give = false,
                 const InPlace* in_place = nullptr) const noexcept {
        struct Post {
            Header h;
            const Parcel* value;
            int home;
            bool give;
            const InPlace* in_place;
        } post{h, value, home(c), give, in_place};
        post.h.b = g_comm->deadlocks();
        pending.parker = runtime::current();
        pending.token = runtime::begin_wait(pending.parker);
        {
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            post.h.req = ++last_request_;
            pending.req = post.h.req;
            ask(post.h.req, &pending);
        }
        const RankWait counted;
        const std::uint32_t word = runtime::park(
            pending.parker, runtime::WaitKind::Rank, &c->blocked_on[static_cast<int>(side)],
            runtime::Release{[](void* arg) noexcept {
                                 auto* p = static_cast<Post*>(arg);
                                 if (p->in_place) {
                                     g_comm->post_in_place(p->home, p->h, &p->in_place->count,
                                                           sizeof p->in_place->count, p->in_place->data,
                                                           p->in_place->bytes, p->in_place->sent);
                                 } else if (p->give) {
                                     g_comm->post_parcel(p->home, p->h, const_cast<Parcel*>(p->value));
                                 } else if (p->value) {
                                     g_comm->post(p->home, p->h, p->value->data(), p->value->size);
                                 } else {
                                     g_comm->post(p->home, p->h);
                                 }
                             },
                             &post});
        if (word == runtime::kDeadlocked) {
            // Not answered: an answer that comes yet is dropped (answered).
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            if (auto it = asked_.find(post.h.req); it != asked_.end()) unask(it);
        }
        return channels::outcome_part(word);
    }

    // answer: the answer to a request of this rank's, for the process that
    // waits for it; dropped if none does any more (a deadlock ended its
    // wait). Under asked_lock_: that process, ended otherwise, takes its
    // request back under it too, so its record is never written after.
    void answer(Message& m) const {
        const Header& h = m.header();
        // (Its process is readied, and an extended read's writer let go,
        // once the lock is released: a process whose wait this answer won
        // stays parked until it is readied, so its record stays.)
        runtime::Parker* wake = nullptr;
        bool let_go = false;
        {
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            auto it = asked_.find(h.req);
            if (it == asked_.end()) {
                // The value of an extended read whose reader waits no more: its
                // writer is let go as if the action had thrown (see the top).
                let_go = h.kind == Kind::Data && h.a == 1;
            } else {
                Pending* p = it->second;
                unask(it);
                std::uint32_t outcome = outcome_word(Outcome::Done);
                if (h.kind == Kind::Failed) {
                    outcome = outcome_word(static_cast<Outcome>(h.a));
                } else if (h.kind == Kind::Data) {
                    try {
                        p->got = m.payload_size() <= channels::InlineParcel::kBytes
                                     ? channels::inline_parcel(p->room, m.payload(), m.payload_size())
                                     : m.take_parcel();
                    } catch (const std::bad_alloc&) {
                        let_go = h.a == 1;  // (the home holds its writer: see the top)
                        outcome = outcome_word(Outcome::Poisoned);
                    }
                }
                if (runtime::try_complete(p->parker, p->token, outcome)) wake = p->parker;
            }
        }
        if (let_go) ext_done(h.chan, h.req, false);
        if (wake) runtime::ready(wake);
    }

    // serve_extended: extended-read proxy p takes a value for its reader
    // and holds what delivered it (holding_), or waits as a probe (queued_).
    void serve_extended(runtime::Parker* p, bool try_only = false) {
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        x->try_only = try_only;
        Parcel* got = nullptr;
        const channels::Attempt a = channels::offer_extended(x->chan, p, &got, &x->held);
        if (a == channels::Attempt::Block) {
            if (try_only && channels::cancel_proxy(x->chan, Side::Reader, p)) {
                // A try that found nothing: not ready (taken back before a
                // writer woke it; otherwise proxy_done looks once more, and
                // answers not ready if it finds nothing then).
                reply(x->peer, x->req, channels::kNotReady);
                p->completer_lock = nullptr;
                drop_proxy(p);
                return;
            }
            list_queued(p);
            return;
        }
        if (a == channels::Attempt::Done) {
            reply_data(x->peer, x->req, got, x->chan->shared_id);  // (it takes got)
            holding_[{x->peer, x->req}] = p;
            return;
        }
        reply(x->peer, x->req, outcome_of(a));
        drop_proxy(p);
    }

    // ext_done_here: the reader of extended-read request `req` of rank
    // `peer` is done with its value.
    void ext_done_here(int peer, std::uint64_t req, bool ok) {
        auto it = holding_.find({peer, req});
        if (it == holding_.end()) {
            runtime::logger().error("csp mpi: rank {} ended an extended read this rank does not hold", peer);
            return;
        }
        runtime::Parker* p = it->second;
        holding_.erase(it);
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        channels::end_extended(x->chan, &x->held, ok);
        drop_proxy(p);
    }

    void reply(int peer, std::uint64_t req, Outcome o) {
        Header h{o == Outcome::Done ? Kind::Done : Kind::Failed};
        h.req = req;
        h.a = static_cast<std::uint32_t>(o);
        g_comm->post(peer, h);
    }

    // reply_data: Data for a reader there, with `value`, which it takes:
    // sent from it when it is a parcel of its own (Comm::post_parcel: no
    // copy), else copied and freed. (extended_chan: the value of an extended
    // read, whose home holds its writer: see answer().)
    void reply_data(int peer, std::uint64_t req, Parcel* value, std::uint64_t extended_chan = 0) {
        Header h{Kind::Data};
        h.req = req;
        if (extended_chan) {
            h.chan = extended_chan;
            h.a = 1;
        }
        if (channels::parcel_own(value)) return g_comm->post_parcel(peer, h, value);
        g_comm->post(peer, h, value ? value->data() : nullptr, value ? value->size : 0);
        channels::parcel_free(value);
    }

    static Outcome outcome_of(channels::Attempt a) noexcept {
        switch (a) {
            case channels::Attempt::Done: return Outcome::Done;
            case channels::Attempt::Poisoned: return Outcome::Poisoned;
            default: return Outcome::Retired;
        }
    }

    // Proxies are many (one a remote request) and alike: kept for the next
    // (a new and a delete were a tenth of bench/mpi's instructions at a home).
    Proxy* make_proxy() {
        void* room = nullptr;
        {
            runtime::Locked<runtime::SpinLock> hold(spare_proxies_lock_);
            if (!spare_proxies_.empty()) {
                room = spare_proxies_.back();
                spare_proxies_.pop_back();
            }
        }
        if (!room) room = ::operator new(sizeof(Proxy));
        return ::new (room) Proxy;
    }
    void free_proxy(Proxy* x) noexcept {
        unlist_queued(x);
        x->~Proxy();
        runtime::Locked<runtime::SpinLock> hold(spare_proxies_lock_);
        if (spare_proxies_.size() < kSpareProxies) {
            try {
                spare_proxies_.push_back(x);
                return;
            } catch (const std::bad_alloc&) {
            }
        }
        ::operator delete(x);
    }

    runtime::Parker* new_proxy(int peer, std::uint64_t req, bool reading) {
        auto* x = make_proxy();
        x->peer = peer;
        x->req = req;
        x->reading = reading;
        runtime::Parker* p = runtime::new_parker(x, false);
        p->home = g_comm->inbox();  // readied into the communication thread's inbox
        return p;
    }

    // stale: a request made before a deadlock across ranks that this rank
    // knows of, by a process that deadlock ends (or has ended): not served,
    // not answered. One made after a deadlock this rank has not heard of
    // yet takes back what came before it first (forget_before).
    bool stale(const Header& h) noexcept {
        if (h.b < epoch_seen_) return true;
        forget_before(h.b);
        return false;
    }

    void queued(runtime::Parker* p, ChannelCore* c, const Header& h) {
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        x->chan = c;
        x->epoch = h.b;
        if (h.pad == kTry && channels::cancel_proxy(c, side_of(x), p)) {
            // A try that found nobody: not ready (taken back before anyone
            // completed it; otherwise proxy_done answers as for a wait).
            reply(x->peer, x->req, channels::kNotReady);
            p->completer_lock = nullptr;
            drop_proxy(p);
            return;
        }
        list_queued(p);
    }

    // list_queued, unlist_queued: the list of proxies whose offer is queued
    // (intrusive: a remote request queued and answered costs no allocation).
    void list_queued(runtime::Parker* p) noexcept {
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        if (x->listed) return;
        x->listed = true;
        x->parker = p;
        x->prev = nullptr;
        x->next = queued_;
        if (queued_) queued_->prev = x;
        queued_ = x;
    }
    void unlist_queued(Proxy* x) noexcept {
        if (!x->listed) return;
        x->listed = false;
        if (x->prev) x->prev->next = x->next;
        else queued_ = x->next;
        if (x->next) x->next->prev = x->prev;
        x->prev = x->next = nullptr;
    }

    void reply_probe(int peer, std::uint64_t req, ChannelCore* c, Side side) {
        reply(peer, req, channels::side_retired(c, side) ? Outcome::Retired : channels::kNotReady);
    }

    // ---- choices across ranks: at the chooser's rank -------------------------------
    // reserve_here: a home asks to reserve choice h.req for guard h.a.
    void reserve_here(const Message& m) {
        const Header& h = m.header();
        bool yes = false;
        {
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            auto it = choices_.find(h.req);
            if (it != choices_.end()) {
                channels::RemoteChoice* rc = it->second;
                yes = runtime::try_complete(rc->parker, rc->token, runtime::kReserved);
            }
        }
        Header answer{Kind::Reserved};
        answer.req = h.chan;  // the ticket
        answer.a = yes ? 1 : 0;
        g_comm->post(m.peer, answer);
    }

    // fire_here: a home ends choice h.req with guard h.a.
    void fire_here(Message& m) {
        const Header& h = m.header();
        const auto o = static_cast<Outcome>(h.b);
        const std::uint32_t word = channels::encode(o, h.a);
        Parcel* value = nullptr;
        if (h.pad & kWithValue) {
            try {
                value = m.take_parcel();
            } catch (const std::bad_alloc&) {
                value = nullptr;  // (the chooser finds no value: it poisons the channel)
            }
        }
        const bool mine = (h.pad & kByReserver) != 0;
        // Decided under the lock; logged, dropped and readied once it is
        // released (a chooser this message ends stays parked until it is
        // readied, so its record stays).
        enum class Drop { No, Over, NotReserved } drop = Drop::No;
        runtime::Parker* wake = nullptr;
        {
            runtime::Locked<runtime::SpinLock> hold(asked_lock_);
            auto it = choices_.find(h.req);
            if (it == choices_.end()) {
                drop = Drop::Over;
            } else {
                channels::RemoteChoice* rc = it->second;
                runtime::Parker* parker = rc->parker;
                const std::uint64_t token = rc->token;
                if (mine) {
                    // Reserved by that home: only it ends the wait.
                    std::uint64_t reserved = runtime::waiting_word(token) | runtime::kReserved;
                    if (!parker->selection.compare_exchange_strong(reserved, runtime::waiting_word(token) | word,
                                                                   std::memory_order_acq_rel)) {
                        drop = Drop::NotReserved;
                    } else {
                        rc->got = std::exchange(value, nullptr);
                        rc->released = (h.pad & kReleased) != 0;
                        choices_.erase(it);
                        wake = parker;
                    }
                } else if (runtime::try_complete(parker, token, word)) {
                    // Poison or retire, from a home that has not reserved it:
                    // only if the choice still waits (else it sees it when it
                    // chooses again).
                    rc->released = (h.pad & kReleased) != 0;
                    choices_.erase(it);
                    wake = parker;
                }
            }
        }
        if (drop == Drop::Over && mine) {
            runtime::logger().error("csp mpi: a choice reserved by rank {} was over before it fired", m.peer);
        } else if (drop == Drop::NotReserved) {
            runtime::logger().error("csp mpi: rank {} fired a choice it had not reserved", m.peer);
        }
        // (An extended guard's value that nobody takes: its home lets the
        // writer go, as if the action had thrown.)
        if (drop != Drop::No && (h.pad & kExtended)) ext_done(h.chan, h.req, false);
        channels::parcel_free(value);  // (unless the choice took it)
        if (wake) runtime::ready(wake);
    }

    // ---- choices across ranks: at the home -----------------------------------------
    void offered(ChannelCore* c, Message& m) {
        const Header& h = m.header();
        if (stale(h)) return;
        const bool reading = h.pad != 1;
        Parcel* value = nullptr;
        if (!reading) {
            value = m.take_parcel();
        }
        runtime::Parker* p = new_proxy(m.peer, h.req, reading);
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        x->choice = true;
        x->extended = h.pad == 2;
        x->index = h.a;
        x->chan = c;
        x->epoch = h.b;
        x->ticket = ++last_ticket_;
        bool partner = false, offers = false;
        const channels::Attempt a = channels::offer_choice(c, side_of(x), p, value, &partner, &offers);
        if (a != channels::Attempt::Block) {
            fire(x, outcome_of(a), 0, nullptr);  // poisoned or retired: only if the choice still waits
            drop_proxy(p);
            return;
        }
        tickets_[x->ticket] = p;
        by_choice_[{x->peer, x->req}].push_back(x->ticket);
        // (An offer of its own choice on the other side is no partner: a
        // choice never communicates with itself.)
        if (partner || (offers && other_offer_opposite(x))) reserve(x);
    }

    // other_offer_opposite: an offer of another choice waits on the other
    // side of x's channel.
    bool other_offer_opposite(const Proxy* x) const {
        for (const auto& [ticket, q] : tickets_) {
            const auto* y = static_cast<const Proxy*>(runtime::record_of(q));
            if (y->chan == x->chan && y->reading != x->reading && (y->peer != x->peer || y->req != x->req)) return true;
        }
        return false;
    }

    // held_offer: the offer of choice (peer, req) that this home holds, if any.
    runtime::Parker* held_offer(int peer, std::uint64_t req, Proxy::State state) const {
        auto it = by_choice_.find({peer, req});
        if (it == by_choice_.end()) return nullptr;
        for (std::uint64_t t : it->second) {
            runtime::Parker* q = tickets_.at(t);
            if (static_cast<Proxy*>(runtime::record_of(q))->state == state) return q;
        }
        return nullptr;
    }

    void reserve(Proxy* x) {
        x->state = Proxy::Reserving;
        Header h{Kind::Reserve};
        h.req = x->req;
        h.a = x->index;
        h.chan = x->ticket;
        g_comm->post(x->peer, h);
    }

    void fire(Proxy* x, Outcome o, std::uint32_t flags, Parcel* value) {
        // A reader's offer ended by retire while values are still buffered
        // (an offer is passed over, so values can be buffered while it
        // waits): not retired for that guard: the choice chooses again.
        if (o == Outcome::Retired && !(flags & kReleased) && x->reading && !channels::side_retired(x->chan, Side::Reader)) {
            flags |= kReleased;
        }
        Header h{Kind::Fire};
        h.req = x->req;
        h.a = x->index;
        h.b = static_cast<std::uint32_t>(o);
        h.pad = flags | (value ? std::uint32_t{kWithValue} : 0u);
        if (x->extended && value) {
            h.pad |= kExtended;
            h.chan = x->chan->shared_id;
        }
        if (value) g_comm->post(x->peer, h, value->data(), value->size);
        else g_comm->post(x->peer, h);
    }

    // forget_offer: offer p is done with (off every queue).
    void forget_offer(runtime::Parker* p) noexcept {
        unlist_offer(p);
        drop_proxy(p);
    }

    // unlist_offer: offer p is off the offers' books (tickets, busy partner,
    // its choice's list).
    void unlist_offer(runtime::Parker* p) noexcept {
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        tickets_.erase(x->ticket);
        busy_.erase(p);
        forget_partner(x);
        auto it = by_choice_.find({x->peer, x->req});
        if (it != by_choice_.end()) {
            std::erase(it->second, x->ticket);
            if (it->second.empty()) by_choice_.erase(it);
        }
        p->completer_lock = nullptr;
    }

    bool drain_wanted() {
        if (!any_wanted_.load(std::memory_order_acquire)) return false;  // (see tick)
        std::vector<std::uint64_t> tickets;
        {
            std::lock_guard<std::mutex> hold(wanted_lock_);
            any_wanted_.store(false, std::memory_order_relaxed);
            if (wanted_.empty()) return false;
            tickets.swap(wanted_);
        }
        for (std::uint64_t t : tickets) {
            auto it = tickets_.find(t);
            if (it == tickets_.end()) continue;
            runtime::Parker* p = it->second;
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            if (x->state != Proxy::Offered) continue;
            if (held_offer(x->peer, x->req, Proxy::Reserving)) continue;  // (its answer decides)
            runtime::Parker* held = held_offer(x->peer, x->req, Proxy::Held);
            if (!held) {
                reserve(x);
                continue;
            }
            // This home holds that choice already, through its offer on
            // another channel (on the same channel it would meet itself):
            // the reservation moves to this offer, whose partner is here.
            auto* h = static_cast<Proxy*>(runtime::record_of(held));
            if (h->chan == x->chan || !channels::cancel_proxy(h->chan, side_of(h), held)) continue;
            ChannelCore* was = h->chan;
            ChannelCore* now = x->chan;
            forget_offer(held);
            x->state = Proxy::Held;
            commit(p, x);  // (x may be gone after)
            recheck(was);
            recheck(now);
        }
        return true;
    }

    // on_reserved: the chooser's rank answers a Reserve.
    void on_reserved(const Message& m) {
        const Header& h = m.header();
        auto it = tickets_.find(h.req);
        if (it == tickets_.end()) return;
        runtime::Parker* p = it->second;
        auto* x = static_cast<Proxy*>(runtime::record_of(p));
        ChannelCore* c = x->chan;
        const Side side = side_of(x);
        if (h.a == 0) {
            // The choice is over, or reserved by another home (then it is
            // released and offers again): this offer goes.
            if (x->finished || channels::cancel_proxy(c, side, p)) forget_offer(p);
            else x->state = Proxy::Offered;  // (completed meanwhile: offer_done takes it)
            return recheck(c);
        }
        x->state = Proxy::Held;
        if (x->finished) {
            fire(x, x->outcome, kByReserver, nullptr);
            forget_offer(p);
            return recheck(c);
        }
        commit(p, x);
        recheck(c);
    }

    // commit: held offer p does what it can now (commit_offer). When it
    // cannot, it is released (recheck) unless a partner may be back soon: a
    // choice of this rank that was released (it chooses again, and will
    // find this offer queued), or one that another home has reserved. Two
    // homes may then each hold the choice the other one's partner is: the
    // offer of the choice of the lower rank keeps waiting, the other is
    // released, so one of them completes. One that waits looks again when
    // that partner has moved on (look_again).
    void commit(runtime::Parker* p, Proxy* x) {
        if (x->extended) return commit_extended(p, x, false);
        Parcel* got = nullptr;
        channels::Busy busy;
        const bool was_waiting = x->busy_wait;
        forget_partner(x);
        const channels::Commit r = channels::commit_offer(x->chan, side_of(x), p, &got, &busy);
        // (The reference to a busy partner's parker goes unless kept below.)
        struct Unref {
            channels::Busy& busy;
            ~Unref() {
                if (busy.parker) runtime::release_parker(busy.parker);
            }
        } unref{busy};
        switch (r) {
            case channels::Commit::Done:
            case channels::Commit::Poisoned:
            case channels::Commit::Retired: {
                const Outcome o = r == channels::Commit::Done       ? Outcome::Done
                                  : r == channels::Commit::Poisoned ? Outcome::Poisoned
                                                                    : Outcome::Retired;
                fire(x, o, kByReserver, got);
                channels::parcel_free(got);
                forget_offer(p);
                return;
            }
            case channels::Commit::Gone:
                busy_.erase(p);
                x->busy_wait = false;
                return;  // (offer_done fires it)
            case channels::Commit::Busy:
            case channels::Commit::Block: {
                // A partner it waits for that has not come back within
                // kPatience is given up: the choice is released.
                const std::int64_t now = now_ns();
                if (!was_waiting) x->held_since = now;
                x->busy_wait = r == channels::Commit::Busy && (!busy.reserved || x->peer < g_comm->rank) &&
                               now - x->held_since < kPatience;
                if (x->busy_wait) {
                    x->waits = std::exchange(busy, {});
                    busy_.insert(p);
                } else {
                    busy_.erase(p);
                }
                drain_wanted();  // (the offers it passed over: reserved now)
                return;          // (recheck releases it if nobody is being reserved for it)
            }
        }
    }

    // commit_extended: held offer p of an ExtendedInputGuard takes a value
    // as an extended read (commit_extended_offer; `again`: its probe was
    // woken, it looks once more); then it fires with the value, and the
    // proxy holds what delivered it (holding_, named by the choice) until
    // the chooser's ExtDone. If it would wait, it waits as a probe, and is
    // released unless a partner is being reserved (recheck).
    void commit_extended(runtime::Parker* p, Proxy* x, bool again) {
        Parcel* got = nullptr;
        const channels::Commit r = channels::commit_extended_offer(x->chan, p, &got, &x->held, again);
        switch (r) {
            case channels::Commit::Done:
                fire(x, Outcome::Done, kByReserver, got);
                channels::parcel_free(got);
                unlist_offer(p);  // (kept until ExtDone)
                holding_[{x->peer, x->req}] = p;
                return;
            case channels::Commit::Poisoned:
            case channels::Commit::Retired:
                fire(x, r == channels::Commit::Poisoned ? Outcome::Poisoned : Outcome::Retired, kByReserver, nullptr);
                forget_offer(p);
                return;
            case channels::Commit::Gone:
                return;  // (offer_done takes it)
            default:
                drain_wanted();
                return;  // (recheck releases it if nobody is being reserved for it)
        }
    }

    // forget_partner: x no longer waits for a busy partner.
    void forget_partner(Proxy* x) noexcept {
        x->busy_wait = false;
        if (x->waits.parker) runtime::release_parker(std::exchange(x->waits.parker, nullptr));
    }

    // look_again: held offers whose busy partner has moved on look again;
    // true if any did. (A partner that comes back takes the offer itself,
    // readying its proxy: this is for one that went elsewhere, and may be
    // late, by a nap of the communication thread.)
    bool look_again() {
        if (busy_.empty()) return false;
        const std::vector<runtime::Parker*> waiting(busy_.begin(), busy_.end());
        std::vector<ChannelCore*> touched;
        for (runtime::Parker* p : waiting) {
            if (!busy_.count(p)) continue;
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            const std::uint64_t word = x->waits.parker->selection.load(std::memory_order_acquire);
            const auto low = static_cast<std::uint32_t>(word);
            // (A busy partner is back once its wait has moved on: a choice
            // reserved or released no more, a woken probe that has run.)
            const bool away = x->waits.probe ? low != runtime::kWaiting && low != runtime::kReserved &&
                                                   channels::outcome_part(low) == Outcome::Done
                                             : low == runtime::kReserved ||
                                                   channels::outcome_part(low) == Outcome::Retired;
            if (word >> 32 == x->waits.token && away && now_ns() - x->held_since < kPatience) {
                continue;  // (not back yet)
            }
            ChannelCore* c = x->chan;
            commit(p, x);
            touched.push_back(c);
        }
        for (ChannelCore* c : touched) recheck(c);
        return !touched.empty();
    }

    // recheck: a held offer on c that waits (Block) waits only while an
    // offer on the other side is being reserved; otherwise it is taken back
    // and its choice released (it chooses again).
    void recheck(ChannelCore* c) {
        bool reserving[2] = {false, false};
        std::vector<runtime::Parker*> held;
        for (auto& [ticket, p] : tickets_) {
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            if (x->chan != c) continue;
            if (x->state == Proxy::Reserving) reserving[static_cast<int>(side_of(x))] = true;
            if (x->state == Proxy::Held && !x->busy_wait) held.push_back(p);
        }
        for (runtime::Parker* p : held) {
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            const Side side = side_of(x);
            if (reserving[side == Side::Reader ? 1 : 0]) continue;
            if (!channels::cancel_proxy(c, side, p)) continue;  // (completed: offer_done fires it)
            fire(x, Outcome::Retired, kByReserver | kReleased, nullptr);
            forget_offer(p);
        }
    }

    // offer_done: offer p's proxy completed: with a partner (held), or by
    // poison or retire (in any state).
    void offer_done(runtime::Parker* p, Proxy* x) noexcept {
        const Outcome o = channels::outcome_part(runtime::outcome_of(p));
        channels::Waiter* w = channels::proxy_waiter(p);
        Parcel* value = std::exchange(w->parcel, nullptr);
        switch (x->state) {
            case Proxy::Offered:
                fire(x, o, 0, nullptr);
                forget_offer(p);
                break;
            case Proxy::Reserving:
                x->finished = true;  // (the answer decides: on_reserved)
                x->outcome = o;
                break;
            case Proxy::Held:
                if (x->extended && o == Outcome::Done) {
                    // Its probe was woken: a value may be within reach.
                    ChannelCore* c = x->chan;
                    commit_extended(p, x, true);
                    recheck(c);
                    break;
                }
                fire(x, o, kByReserver, x->reading && o == Outcome::Done ? value : nullptr);
                forget_offer(p);
                break;
        }
        channels::parcel_free(value);  // (a reader's, sent; or a writer's nobody took)
    }

    // withdraw: choice req of rank `peer` is over: its offers here go (those
    // being reserved go with the answer, which is no).
    void withdraw(int peer, std::uint64_t req) {
        auto it = by_choice_.find({peer, req});
        if (it == by_choice_.end()) return;
        const std::vector<std::uint64_t> tickets = it->second;
        for (std::uint64_t t : tickets) {
            runtime::Parker* p = tickets_.at(t);
            auto* x = static_cast<Proxy*>(runtime::record_of(p));
            if (x->state != Proxy::Offered) continue;
            if (channels::cancel_proxy(x->chan, side_of(x), p)) forget_offer(p);
            // (else completed by poison or retire: offer_done takes it)
        }
    }

    void drop_proxy(runtime::Parker* p) noexcept {
        free_proxy(static_cast<Proxy*>(runtime::record_of(p)));
        runtime::release_parker(p);
    }

    void at_home(ChannelCore* c, Message& m) {
        const Header& h = m.header();
        switch (h.kind) {
            case Kind::Hello: {
                const std::string theirs(m.payload(), m.payload_size()), ours = identity(c);
                if (theirs != ours) {
                    runtime::log_fatal(fmt::format(
                        "csp mpi: channel {} of the job is {} on rank {}, but {} on rank {}: every rank must make "
                        "the channels it shares (outside any process, after the World) in the same order",
                        h.chan, shown(theirs), m.peer, shown(ours), g_comm->rank).c_str());
                }
                return;
            }
            case Kind::Ends: {
                bool retire;
                {
                    std::lock_guard<std::mutex> hold(lock_);
                    Ends& e = ends_[h.chan - 1][h.a];
                    e.later.emplace(h.req, static_cast<std::int64_t>(h.b) - 1);
                    retire = change(e, 0);
                }
                if (retire) channels::retire_side(c, static_cast<Side>(h.a));
                return;
            }
            case Kind::Poison:
                channels::poison(c);
                if (h.req) reply(m.peer, h.req, Outcome::Done);  // (its poisoner waits for this: see poison)
                return;
            case Kind::Read: {
                if (stale(h)) return;
                if (h.pad == kProbe) return reply_probe(m.peer, h.req, c, Side::Reader);
                runtime::Parker* p = new_proxy(m.peer, h.req, true);
                Parcel* got = nullptr;
                const channels::Attempt a = channels::offer_read(c, p, &got, h.pad != kTry);
                if (a == channels::Attempt::Block) return queued(p, c, h);  // (proxy_done answers)
                if (a == channels::Attempt::Done) {
                    reply_data(m.peer, h.req, got);  // (it takes got)
                } else {
                    reply(m.peer, h.req, outcome_of(a));
                    channels::parcel_free(got);
                }
                drop_proxy(p);
                return;
            }
            case Kind::Write: {
                if (stale(h)) return;
                if (h.pad == kProbe) return reply_probe(m.peer, h.req, c, Side::Writer);
                Parcel* value = m.take_parcel();
                runtime::Parker* p = new_proxy(m.peer, h.req, false);
                const channels::Attempt a = channels::offer_write(c, p, value, h.pad != kTry);
                if (a == channels::Attempt::Block) return queued(p, c, h);
                reply(m.peer, h.req, outcome_of(a));
                drop_proxy(p);
                return;
            }
            case Kind::Offer:
                return offered(c, m);
            case Kind::ExtRead: {
                if (stale(h)) return;
                runtime::Parker* p = new_proxy(m.peer, h.req, true);
                auto* x = static_cast<Proxy*>(runtime::record_of(p));
                x->extended = true;
                x->chan = c;
                x->epoch = h.b;
                return serve_extended(p, h.pad == kTry);
            }
            case Kind::ExtDone:
                return ext_done_here(m.peer, h.req, h.a != 0);
            default:
                runtime::logger().error("csp mpi: unexpected message kind {} from rank {}",
                                        static_cast<unsigned>(h.kind), m.peer);
        }
    }

    // Unsettled: a channel whose home is not chosen yet (see the top): the
    // ranks where placed processes hold its readers [0] and writers [1], and
    // the changes of its ends here meanwhile.
    struct EndsEvent {
        Side side;
        int delta;
        bool spmd;
        std::uint64_t epoch;
    };
    struct Unsettled {
        std::vector<int> ranks[2];
        std::vector<EndsEvent> ends;
    };

    // Ends: one side's ends of one shared channel (see the top).
    struct Ends {
        std::uint64_t spmd = 0;  // made in this rank's SPMD part: its epoch
        std::int64_t count = 0;  // (at the home) of every rank
        std::multimap<std::uint64_t, std::int64_t> later;  // (at the home) other ranks' changes, by epoch
    };

    // change: at the home, `delta` now, then the changes of other ranks
    // whose epoch it has reached; true when a leave among them left no end
    // (lock_ held). (The count never falls below zero: a leave is applied
    // after the join of its end.)
    static bool change(Ends& e, std::int64_t delta) {
        bool left = delta < 0;
        e.count += delta;
        while (!e.later.empty() && e.later.begin()->first <= e.spmd) {
            left |= e.later.begin()->second < 0;
            e.count += e.later.begin()->second;
            e.later.erase(e.later.begin());
        }
        return left && e.count == 0;
    }

    // The requests of this rank's processes still waiting for an answer,
    // and its choices with offers out.
    // (A spin lock, taken twice a hop of bench/mpi's ping-pong, by a process
    // or whoever holds the turn: held for a map operation and what it
    // decides, never across a wake-up, a post or a log line.)
    mutable runtime::SpinLock asked_lock_;
    mutable std::uint64_t last_request_ = 0;
    mutable std::unordered_map<std::uint64_t, Pending*> asked_;
    // ask, unask: a request into asked_ and out again (asked_lock_ held),
    // with its map node kept for the next (no allocation a request: up to
    // kSpareAsked nodes are kept).
    static constexpr std::size_t kSpareAsked = 64;
    mutable std::vector<std::unordered_map<std::uint64_t, Pending*>::node_type> spare_asked_;
    void ask(std::uint64_t req, Pending* p) const {
        if (spare_asked_.empty()) {
            asked_.emplace(req, p);
            return;
        }
        auto node = std::move(spare_asked_.back());
        spare_asked_.pop_back();
        node.key() = req;
        node.mapped() = p;
        asked_.insert(std::move(node));
    }
    void unask(std::unordered_map<std::uint64_t, Pending*>::iterator it) const noexcept {
        auto node = asked_.extract(it);
        if (spare_asked_.size() < spare_asked_.capacity()) spare_asked_.push_back(std::move(node));
    }
    mutable std::unordered_map<std::uint64_t, channels::RemoteChoice*> choices_;

    // Offers of other ranks' choices here, by ticket, and by (rank, choice)
    // (whoever holds the turn's: comm.cpp); offers passed over, to reserve.
    std::uint64_t last_ticket_ = 0;
    std::unordered_map<std::uint64_t, runtime::Parker*> tickets_;
    std::map<std::pair<int, std::uint64_t>, std::vector<std::uint64_t>> by_choice_;
    std::mutex wanted_lock_;
    static constexpr std::size_t kSpareProxies = 256;
    runtime::SpinLock spare_proxies_lock_;
    std::vector<void*> spare_proxies_;
    // Proxies answered, to free once the round's sends are out (free_spent;
    // whoever holds the turn's). Up to its reserved capacity: past it, one
    // is freed at once.
    static constexpr std::size_t kSpentMost = 64;
    std::vector<runtime::Parker*> spent_;
    std::vector<std::uint64_t> wanted_;
    std::atomic<bool> any_wanted_{false};  // (set under wanted_lock_ with a push: read first, without it)
    std::unordered_set<runtime::Parker*> busy_;  // held offers waiting for a busy partner

    // A barrier shared by ranks (see the top); at its home, the job's count.
    struct Offers {
        std::uint64_t seq = 0;     // the last report's sequence
        std::int64_t count = 0;    // choices offering it there in this phase
        std::int64_t skipped = 0;  // of them, of members not counted yet (the last report or round)
    };
    // RankEnds: (at the home) one rank's SPMD ends of a shared barrier.
    // When the home makes its own SPMD end k, it counts rank r's k too,
    // before r has said it made it: r may not have got there yet, and the
    // phases must not go on without r's member of the same Parallel. Unless
    // r has not made k and still has an older member (an SPMD end, or one
    // enrolled in a process): then r is behind (its program diverged from
    // the home's, or a member lives across Parallels: it may be syncing
    // with the home's new members meanwhile), and its k counts only once r
    // says it made it, or once its older members have resigned
    // (`deferred`). An SPMD end that r made and resigned before the home
    // made its own (r was ahead) is `gone`: never counted.
    struct RankEnds {
        std::uint64_t made = 0;             // SPMD ends it said it made
        std::set<std::uint64_t> live;       // counted, not resigned
        std::set<std::uint64_t> deferred;   // made at the home, not counted yet
        std::set<std::uint64_t> gone;
        std::int64_t others = 0;            // its other members (enrolled in processes), as it said
    };
    struct BarrierState {
        channels::BarrierCore* core = nullptr;
        // (At the home, alting barriers:) each rank's offers, and the round
        // of reservations under way (`rounds` numbers them).
        std::vector<Offers> offers;
        int asked = 0;  // ranks asked in the round under way
        std::uint64_t round_epoch = 0;  // the home's epoch when it began
        bool round = false;
        std::uint32_t rounds = 0;
        int answers = 0;
        std::int64_t reserved = 0;
        Ends ends;                  // (at the home) its members in the job (SPMD ends: `ranks`)
        std::vector<RankEnds> ranks;  // (at the home) by rank
        std::uint64_t phase = 0;    // (at the home) phases over
        std::multimap<std::uint64_t, std::int64_t> held;  // (at the home) arrivals of members not counted yet, by epoch
        std::int64_t arrivals = 0;  // (at the home) members arrived in this phase
        bool poisoned = false;
    };

    // (At the home, lock_ held:) rank_ends, rank r's; count_spmd, its SPMD
    // end k counted.
    static RankEnds& rank_ends(BarrierState& st, int r) {
        if (st.ranks.empty()) st.ranks.resize(static_cast<std::size_t>(g_comm->size));
        return st.ranks[static_cast<std::size_t>(r)];
    }
    static void count_spmd(BarrierState& st, RankEnds& e, std::uint64_t k) {
        e.live.insert(k);
        ++st.ends.count;
    }
    // spmd_made: rank r made SPMD end k of the barrier; if r is the home,
    // the home's epoch moves to k and k is counted for every rank
    // (RankEnds says how). spmd_resigned: rank r resigned its SPMD end k.
    static void spmd_made(BarrierState& st, int r, std::uint64_t k) {
        RankEnds& mine = rank_ends(st, r);
        mine.made = k;
        if (r != g_comm->rank) {
            // (Made where the home had counted it not yet: now it counts.)
            if (k <= st.ends.spmd && mine.deferred.erase(k) > 0) count_spmd(st, mine, k);
            return;
        }
        st.ends.spmd = k;
        for (int q = 0; q < g_comm->size; ++q) {
            RankEnds& e = rank_ends(st, q);
            if (e.gone.erase(k) > 0) continue;  // (made and resigned there already)
            // (Every member it has, as far as the home has heard, is older
            // than k if it has not made k.)
            const bool behind = e.made < k && (!e.live.empty() || e.others > 0);
            if (behind) e.deferred.insert(k);
            else count_spmd(st, e, k);
        }
    }
    static void spmd_resigned(BarrierState& st, int r, std::uint64_t k) {
        RankEnds& e = rank_ends(st, r);
        if (e.live.erase(k) > 0) {
            --st.ends.count;
            promote(st, e);
        } else if (k > st.ends.spmd) {
            e.gone.insert(k);
        }
    }
    static void other_end(BarrierState& st, int r, std::int64_t delta) {
        RankEnds& e = rank_ends(st, r);
        e.others += delta;
        if (delta < 0) promote(st, e);
        else demote(st, e);
    }
    // demote: a member enrolled there (in a process) before it made the SPMD
    // ends counted for it ahead of time: it is behind after all (its
    // process resigned its last member and enrolled a new one, say), and
    // those ends count once made, or once its older members have gone.
    static void demote(BarrierState& st, RankEnds& e) {
        while (!e.live.empty() && *e.live.rbegin() > e.made) {
            e.deferred.insert(*e.live.rbegin());
            e.live.erase(std::prev(e.live.end()));
            --st.ends.count;
        }
    }
    // promote: no older member left there: the first end it has not made
    // yet counts from now on, as at the start.
    static void promote(BarrierState& st, RankEnds& e) {
        if (e.deferred.empty() || !e.live.empty() || e.others > 0) return;
        count_spmd(st, e, *e.deferred.begin());
        e.deferred.erase(e.deferred.begin());
    }

    // members: a shared barrier's members as the home counts them: those
    // it has applied, and the enrols of ranks ahead of it in the SPMD part
    // that it cannot apply yet (their resigns, not: counting a member
    // too many only makes a phase wait, never end early).
    static std::int64_t members(const BarrierState& st) noexcept {
        std::int64_t n = st.ends.count;
        for (const auto& [epoch, delta] : st.ends.later) n += std::max<std::int64_t>(delta, 0);
        return n;
    }

    mutable std::mutex lock_;
    std::vector<BarrierState> barriers_;                 // by id - 1
    std::vector<std::array<Ends, 2>> ends_;              // by id - 1
    std::vector<ChannelCore*> channels_;                 // by id - 1
    std::vector<int> homes_;                             // by id - 1: its home (-1: not chosen yet)
    std::map<std::uint64_t, Unsettled> unsettled_;       // made, home not chosen yet (see the top)
    std::atomic<std::size_t> unsettled_count_{0};        // (how many: launching looks without the lock)
    std::map<std::uint64_t, std::vector<Message>> early_;  // for channels not made here yet, or not settled
    std::map<std::uint64_t, std::vector<Message>> checks_;  // HomeChecks of channels not settled here yet
    std::vector<std::uint64_t> ready_early_;             // made since: replay (tick)
    std::atomic<bool> any_ready_early_{false};           // (as any_wanted_, under lock_)

    // (Whoever holds the turn's, comm.cpp:) proxies whose offer is queued, and
    // the most deadlocks across ranks any rank is known to have had.
    Proxy* queued_ = nullptr;
    std::uint32_t epoch_seen_ = 0;
    // Extended reads of other ranks' processes whose value was sent, by
    // (rank, request): each holds its writer or slot until ExtDone.
    std::map<std::pair<int, std::uint64_t>, runtime::Parker*> holding_;
};

Shared g_shared;

int shared_home_by_id(std::uint64_t id) noexcept { return g_shared.home_by_id(id); }

}  // namespace

channels::Distribution* shared_channels() noexcept { return &g_shared; }
bool channel_replays_pending() { return g_shared.replays_pending(); }
bool channels_tick() { return g_shared.tick(); }
void channels_sent() noexcept { g_shared.free_spent(); }
void release_shared_channels() noexcept { g_shared.release_all(); }

void on_channel_message(Message& m) { g_shared.handle(m); }

int home_rank(const channels::ChannelCore* c) noexcept {
    return c && c->shared_id ? c->shared_home.load(std::memory_order_acquire) : -1;
}

void note_placement(int r, const csp::detail::BodyBase& call) noexcept {
    call.bound_ends([](void* rank, const channels::ChannelCore* c,
                       bool reader) { g_shared.placed(c, reader, *static_cast<const int*>(rank)); },
                    &r);
}
void on_proxy_done(runtime::Parker* p) noexcept { g_shared.proxy_done(p); }
void deadlock_broken(std::uint32_t deadlocks) { g_shared.forget_before(deadlocks); }

}  // namespace csp::mpi::detail
