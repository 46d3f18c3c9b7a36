// network.cpp: seeing the network (API.md): a snapshot of the processes of
// this OS process and the channels they wait on, the wait-for graph over
// it, and its two views: the explanation a DeadlockError carries (the
// wait-for cycle, process -> channel -> process, and ends of a channel waited
// on that no running process holds) and the Graphviz DOT of
// csp::write_graph and CSP_GRAPH.
//
// The snapshot is taken under the registry's lock, so no process leaves
// while it is read (its body and name stay). When the runtime's detector has
// found a deadlock (the explainer, runtime::set_deadlock_explainer) every
// process is parked and none can wake: all of it is read as it is. At any
// other time (write_graph) the others go on running: what a process waits
// on is read only while it is parked, and kept only if its wait word reads
// the same afterwards (runtime::wait_seen): then it waited all along, so it
// held an end of each channel it waits on, which were therefore alive.
//
// What a process waits on comes from its wait reason (channels::waits_of; a
// Parallel's Join); what it holds, from the channel and barrier ends among
// the arguments of its running call (BodyBase::held_ends, held_barriers),
// compared by address only with channels and barriers some process waits on
// (never read through: see HeldEnd). That
// leaves out ends a callable captured and ends held by plain threads
// (main): so a channel with more live ends on a side than processes hold is
// named, with who may keep the rest.
//
// The graph has four kinds of node: processes, "the other side of channel
// c" (whose successors are the processes holding an end of that side),
// barriers waited at (whose successors are the processes holding an end of
// it that do not wait there: what its phase waits for) and Joins (whose
// successors are the processes arriving at it). One iterative depth-first
// walk finds its cycles: linear in processes, waits and ends.
#include "csp/graph.hpp"

#include "csp/detail/call.hpp"

#include "channels/barrier.hpp"
#include "channels/channel.hpp"
#include "channels/remote.hpp"
#include "runtime/log.hpp"
#include "runtime/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <pthread.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace csp {
namespace detail {
namespace {

constexpr std::size_t kCyclesShown = 4;
using channels::Side;

Side other(Side s) noexcept { return s == Side::Reader ? Side::Writer : Side::Reader; }

// What a process is doing, as the graph colours it.
enum class Doing : std::uint8_t { Running, Reading, Writing, Choosing, Syncing, Joining, Timed, Elsewhere, Waiting, Ready };

struct Snapshot {
    struct Channel {
        const channels::ChannelCore* core;
        std::string name;
        std::string kind;       // "unbuffered", "buffer 4 (2 in it)", ...
        std::int64_t ends[2];   // alive, by Side
        bool across;            // crosses to other OS processes or ranks
    };
    struct Waits {
        std::size_t channel;  // index into channels
        Side side;            // as which side it waits
    };
    struct Barrier {
        const channels::BarrierCore* core;
        std::string name;
        std::int64_t enrolled;  // ends enrolled now
        bool across;            // members in other OS processes or ranks
    };
    struct Process {
        std::string name;
        Doing doing = Doing::Running;
        std::vector<Waits> waits;
        // Joins, by their joiners' wait reasons (Join::waited_as): compared,
        // never read.
        const void* joining = nullptr;  // the Join it waits at
        const void* arrives = nullptr;  // the Join it arrives at
        std::vector<std::pair<const channels::ChannelCore*, Side>> held;
        std::vector<std::size_t> syncs;  // barriers it waits at (syncs, or offers in a choice): into barriers
        std::vector<const channels::BarrierCore*> held_barriers;  // barrier ends among its arguments
        std::size_t os = 0;  // index into os (joined across OS processes)
    };
    std::vector<Process> processes;
    // The OS processes it shows, each a title and a short name; empty: this
    // one alone.
    struct Os {
        std::string title, short_name;
    };
    std::vector<Os> os;
    std::vector<Channel> channels;
    std::map<const channels::ChannelCore*, std::size_t> channel_at;
    std::vector<Barrier> barriers;
    std::map<const channels::BarrierCore*, std::size_t> barrier_at;
};

std::string kind_of(const channels::ChannelCore* c) {
    if (!c->buffered) return "unbuffered";
    std::string k;
    switch (c->kind) {
    case channels::BufferKind::Fifo: k = "buffer " + std::to_string(c->capacity); break;
    case channels::BufferKind::Infinite: k = "infinite buffer"; break;
    case channels::BufferKind::Overwriting: k = "overwriting buffer " + std::to_string(c->capacity); break;
    case channels::BufferKind::Dropping: k = "dropping buffer " + std::to_string(c->capacity); break;
    }
    // (Read without the channel's lock: a moment's count, for the eye.)
    return k + ", " + std::to_string(__atomic_load_n(&c->count, __ATOMIC_RELAXED)) + " in it";
}

Doing doing_of(const runtime::WaitReason* why, runtime::WaitKind kind) {
    if (kind == runtime::WaitKind::Timed) return Doing::Timed;
    const runtime::Subject subject = why ? why->subject_kind : runtime::Subject::None;
    // (A wait that another OS process or rank may end says what it is, when
    // it is on a channel, a choice or a barrier.)
    if (kind == runtime::WaitKind::RankJoin || kind == runtime::WaitKind::OsJoin ||
        ((kind == runtime::WaitKind::Remote || kind == runtime::WaitKind::Rank) &&
         (subject == runtime::Subject::None || subject == runtime::Subject::Join))) {
        return Doing::Elsewhere;
    }
    switch (subject) {
    case runtime::Subject::Read: return Doing::Reading;
    case runtime::Subject::Write: return Doing::Writing;
    case runtime::Subject::Choice: return Doing::Choosing;
    case runtime::Subject::Barrier: return Doing::Syncing;
    case runtime::Subject::Join: return Doing::Joining;
    case runtime::Subject::None: break;
    }
    return Doing::Waiting;
}

// handed_on: an end given to a process and handed on to one it runs
// still counts for the first (HeldEnds notes the arguments once, when the
// call begins). Where a channel side waited on has more ends noted than
// alive, the notes of processes some of whose descendants note it too are
// the stale ones: they are dropped, the oldest ancestor first, until the
// notes no longer exceed the ends.
// (Notes of barrier ends are dropped the same way, against the ends
// enrolled.)
void drop_handed_on(Snapshot& s) {
    const std::size_t n = s.processes.size();
    constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::map<const void*, std::size_t> joiner;
    for (std::size_t i = 0; i < n; ++i) {
        if (s.processes[i].joining) joiner[s.processes[i].joining] = i;
    }
    std::vector<std::size_t> parent(n, kNone);
    for (std::size_t i = 0; i < n; ++i) {
        if (auto it = joiner.find(s.processes[i].arrives); s.processes[i].arrives && it != joiner.end()) parent[i] = it->second;
    }
    auto depth = [&](std::size_t i) {
        std::size_t d = 0;
        for (std::size_t a = parent[i]; a != kNone && d < n; a = parent[a]) ++d;
        return d;
    };
    // One end noted by the processes `who`, of which `ends` are alive:
    // erase(a) drops process a's note.
    auto drop = [&](const std::vector<std::size_t>& who, std::int64_t ends, auto&& erase) {
        std::int64_t excess = static_cast<std::int64_t>(who.size()) - ends;
        if (excess <= 0) return;
        std::vector<bool> noting(n, false);
        for (std::size_t i : who) noting[i] = true;
        std::vector<std::size_t> stale;  // ancestors of a noting process that note it too
        for (std::size_t i : who) {
            for (std::size_t a = parent[i], hops = 0; a != kNone && hops < n; a = parent[a], ++hops) {
                if (noting[a] && std::find(stale.begin(), stale.end(), a) == stale.end()) stale.push_back(a);
            }
        }
        std::sort(stale.begin(), stale.end(), [&](std::size_t x, std::size_t y) { return depth(x) < depth(y); });
        for (std::size_t a : stale) {
            if (excess-- <= 0) break;
            erase(a);
        }
    };
    std::map<std::pair<const channels::ChannelCore*, Side>, std::vector<std::size_t>> noted;
    for (std::size_t i = 0; i < n; ++i) {
        for (const auto& h : s.processes[i].held) noted[h].push_back(i);
    }
    for (auto& [key, who] : noted) {
        const Snapshot::Channel& ch = s.channels[s.channel_at.at(key.first)];
        if (ch.across) continue;
        drop(who, ch.ends[static_cast<int>(key.second)], [&](std::size_t a) {
            auto& held = s.processes[a].held;
            held.erase(std::find(held.begin(), held.end(), key));
        });
    }
    // (A process waiting at a barrier holds an end of it, noted or not: one
    // captured, say. Those not noted leave fewer ends to the notes.)
    std::map<const channels::BarrierCore*, std::vector<std::size_t>> enrolled;
    for (std::size_t i = 0; i < n; ++i) {
        for (const auto* b : s.processes[i].held_barriers) enrolled[b].push_back(i);
    }
    for (auto& [core, who] : enrolled) {
        const std::size_t at = s.barrier_at.at(core);
        const Snapshot::Barrier& b = s.barriers[at];
        if (b.across) continue;
        std::int64_t unnoted = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const auto& p = s.processes[i];
            if (std::count(p.syncs.begin(), p.syncs.end(), at) > 0 &&
                std::count(p.held_barriers.begin(), p.held_barriers.end(), core) == 0) {
                ++unnoted;
            }
        }
        const channels::BarrierCore* key = core;
        drop(who, b.enrolled - unnoted, [&](std::size_t a) {
            auto& held = s.processes[a].held_barriers;
            held.erase(std::find(held.begin(), held.end(), key));
        });
    }
}

// take: the snapshot of `parked` (under the registry's lock). `quiet`: every
// one is parked and stays so (a deadlock found), so nothing need be checked.
// Otherwise what a process waits on is read only while it waits, and kept
// only if it was the same wait throughout (runtime::wait_seen). What is read
// then is never freed memory: a Join is not read at all (a joiner's reason
// is the Join's identity, by its address), and every other wait reason is
// static or in the shared arena (channels, choices' waiter blocks,
// barriers), as are the channels, which stay mapped.
void settle(Snapshot& s);

Snapshot take(const std::vector<runtime::Parker*>& parked, bool quiet, bool settled = true) {
    Snapshot s;
    s.processes.reserve(parked.size());
    std::vector<channels::ChannelWait> waits;
    std::vector<Snapshot::Channel> seen;
    std::vector<Side> seen_sides;  // (as which side each of `seen` is waited on)
    std::vector<Snapshot::Barrier> seen_barriers;
    for (runtime::Parker* p : parked) {
        Snapshot::Process proc;
        proc.name = runtime::name_of(p);
        const auto* body = dynamic_cast<const BodyBase*>(runtime::body_of(p));
        if (body) proc.arrives = body->group();
        // (Running or ready, or moved on while looked at: its name and
        // group only, nothing else holds still.)
        auto bare = [&] {
            Snapshot::Process only;
            only.name = std::move(proc.name);
            only.arrives = proc.arrives;
            only.doing = runtime::running_now(p) ? Doing::Running : Doing::Ready;
            s.processes.push_back(std::move(only));
        };
        const runtime::WaitSeen before = runtime::wait_seen(p);
        if (!quiet && !before.waiting) {
            bare();
            continue;
        }
        const runtime::WaitReason* why = p->wait_reason.load(std::memory_order_acquire);
        const runtime::WaitKind kind = p->wait_kind.load(std::memory_order_acquire);
        waits.clear();
        seen.clear();
        seen_sides.clear();
        seen_barriers.clear();
        if (kind == runtime::WaitKind::Join) {
            proc.doing = Doing::Joining;
            proc.joining = why;
        } else {
            proc.doing = doing_of(why, kind);
            channels::waits_of(why, &waits);
            for (const channels::ChannelWait& w : waits) {
                if (const channels::BarrierCore* b = w.barrier) {
                    // (across: members may be in other OS processes or on other ranks.)
                    seen_barriers.push_back({b, std::string(b->name, strnlen(b->name, sizeof b->name)),
                                             __atomic_load_n(&b->enrolled, __ATOMIC_RELAXED),
                                             b->crossing.load(std::memory_order_relaxed) || b->shared_id != 0 ||
                                                 b->elsewhere.load(std::memory_order_relaxed) > 0});
                    continue;
                }
                const channels::ChannelCore* c = w.channel;
                seen.push_back({c, std::string(c->name, strnlen(c->name, sizeof c->name)), kind_of(c),
                                {c->reader_ends.load(std::memory_order_relaxed), c->writer_ends.load(std::memory_order_relaxed)},
                                c->crossing.load(std::memory_order_relaxed) != nullptr || c->shared_id != 0});
                seen_sides.push_back(w.side);
            }
        }
        if (body) {
            body->held_ends(
                [](void* ctx, const channels::ChannelCore* c, bool reader) {
                    static_cast<Snapshot::Process*>(ctx)->held.push_back({c, reader ? Side::Reader : Side::Writer});
                },
                &proc);
            body->held_barriers(
                [](void* ctx, const channels::BarrierCore* b) {
                    static_cast<Snapshot::Process*>(ctx)->held_barriers.push_back(b);
                },
                &proc);
        }
        std::atomic_thread_fence(std::memory_order_acquire);
        if (!quiet && runtime::wait_seen(p) != before) {
            bare();  // it moved on meanwhile: what was read may be stale
            continue;
        }
        for (std::size_t i = 0; i < seen.size(); ++i) {
            auto [it, fresh] = s.channel_at.try_emplace(seen[i].core, s.channels.size());
            if (fresh) s.channels.push_back(std::move(seen[i]));
            proc.waits.push_back({it->second, seen_sides[i]});
        }
        for (auto& b : seen_barriers) {
            auto [it, fresh] = s.barrier_at.try_emplace(b.core, s.barriers.size());
            if (fresh) s.barriers.push_back(std::move(b));
            // (Once: a choice may have two guards on one barrier.)
            if (std::find(proc.syncs.begin(), proc.syncs.end(), it->second) == proc.syncs.end()) {
                proc.syncs.push_back(it->second);
            }
        }
        s.processes.push_back(std::move(proc));
    }
    if (settled) settle(s);
    return s;
}

// settle: held ends count only on channels someone waits on (alive: see
// HeldEnd), and those handed on count once.
void settle(Snapshot& s) {
    for (auto& proc : s.processes) {
        std::erase_if(proc.held, [&](const auto& h) { return !s.channel_at.count(h.first); });
        std::erase_if(proc.held_barriers, [&](const auto* b) { return !s.barrier_at.count(b); });
    }
    drop_handed_on(s);
}

// ---------------------------------------------------------------------------
// Across OS processes: each OS process of a deadlock that spans several
// writes its snapshot, unsettled, as text (part_of, when it confirms it is
// quiet: runtime/across.cpp); whoever breaks the deadlock joins them
// (joined). Channels are the same objects in every OS process (the arena),
// so they join by address, which is only compared, never read through;
// Joins, private to each OS process, are told apart by it. A text is a
// sequence of fields, each its length, ':' and its bytes.

void put(std::string& out, std::string_view field) {
    out += std::to_string(field.size());
    out += ':';
    out += field;
}
void put(std::string& out, std::uint64_t v) { put(out, std::to_string(v)); }
std::uint64_t address(const void* p) { return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(p)); }

// parsed: a field that must be a number.
std::uint64_t parsed(std::string_view t) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) {
        throw std::runtime_error("csp: a bad number in a deadlock's explanation");
    }
    return v;
}

struct Fields {
    std::string_view rest;
    std::string_view text() {
        const std::size_t colon = rest.find(':');
        if (colon == std::string_view::npos) throw std::runtime_error("csp: a bad part of a deadlock's explanation");
        const std::uint64_t n = parsed(rest.substr(0, colon));
        if (n > rest.size() - colon - 1) throw std::runtime_error("csp: a bad part of a deadlock's explanation");
        const std::string_view field = rest.substr(colon + 1, n);
        rest.remove_prefix(colon + 1 + n);
        return field;
    }
    std::uint64_t number() { return parsed(text()); }
};

// key: how a part names a channel: by its address, the same in every OS
// process (the arena); in an MPI job as the Distribution says (a channel
// shared by ranks by its id, any other tagged with its rank). Compared
// only: see HeldEnd.
std::uint64_t key(const channels::ChannelCore* c) {
    if (const channels::Distribution* d = channels::distribution()) return d->channel_key(c);
    return address(c);
}

std::string part_of(const std::vector<runtime::Parker*>& parked) {
    // (Not yet proven: another OS process may wake one of them meanwhile.
    // Read as write_graph reads, each only where it held still: in a
    // deadlock, all of it.)
    const Snapshot s = take(parked, false, false);
    std::string out;
    put(out, s.channels.size());
    for (const auto& c : s.channels) {
        put(out, key(c.core));
        put(out, c.name);
        put(out, c.kind);
        put(out, static_cast<std::uint64_t>(c.ends[0]));
        put(out, static_cast<std::uint64_t>(c.ends[1]));
        put(out, c.across ? 1 : 0);
    }
    // Barriers join by their address too (the arena); not in an MPI job,
    // where a barrier shared by ranks has a core on each and addresses of
    // different ranks may meet: there a joined report goes without barriers.
    const bool barriers = channels::distribution() == nullptr;
    put(out, barriers ? s.barriers.size() : 0);
    for (std::size_t i = 0; barriers && i < s.barriers.size(); ++i) {
        const auto& b = s.barriers[i];
        put(out, address(b.core));
        put(out, b.name);
        put(out, static_cast<std::uint64_t>(b.enrolled));
        put(out, b.across ? 1 : 0);
    }
    put(out, s.processes.size());
    for (const auto& p : s.processes) {
        put(out, p.name);
        put(out, static_cast<std::uint64_t>(p.doing));
        put(out, address(p.joining));
        put(out, address(p.arrives));
        put(out, p.waits.size());
        for (const auto& w : p.waits) {
            put(out, key(s.channels[w.channel].core));
            put(out, static_cast<std::uint64_t>(w.side));
        }
        put(out, p.held.size());
        for (const auto& [core, side] : p.held) {
            put(out, key(core));
            put(out, static_cast<std::uint64_t>(side));
        }
        put(out, barriers ? p.syncs.size() : 0);
        for (std::size_t i = 0; barriers && i < p.syncs.size(); ++i) put(out, address(s.barriers[p.syncs[i]].core));
        put(out, barriers ? p.held_barriers.size() : 0);
        for (std::size_t i = 0; barriers && i < p.held_barriers.size(); ++i) put(out, address(p.held_barriers[i]));
    }
    return out;
}

// joined: the snapshot of every OS process of the deadlock, settled.
Snapshot joined(const std::vector<std::pair<std::string, std::string>>& titled_parts) {
    Snapshot s;
    for (std::size_t k = 0; k < titled_parts.size(); ++k) {
        const auto& [title, part] = titled_parts[k];
        s.os.push_back({title, title.substr(0, title.find(','))});
        // (Joins of OS process k: their addresses, moved into a range of its own.)
        auto join = [k](std::uint64_t a) -> const void* {
            return a ? reinterpret_cast<const void*>(static_cast<std::uintptr_t>(a ^ (std::uint64_t{k + 1} << 52))) : nullptr;
        };
        auto core = [](std::uint64_t a) { return reinterpret_cast<const channels::ChannelCore*>(static_cast<std::uintptr_t>(a)); };
        auto side = [](std::uint64_t v) { return v == static_cast<std::uint64_t>(Side::Reader) ? Side::Reader : Side::Writer; };
        Fields in{part};
        for (std::uint64_t n = in.rest.empty() ? 0 : in.number(); n > 0; --n) {
            Snapshot::Channel c{core(in.number()), std::string(in.text()), std::string(in.text()), {0, 0}, false};
            c.ends[0] = static_cast<std::int64_t>(in.number());
            c.ends[1] = static_cast<std::int64_t>(in.number());
            c.across = in.number() != 0;
            if (s.channel_at.try_emplace(c.core, s.channels.size()).second) s.channels.push_back(std::move(c));
        }
        auto barrier = [](std::uint64_t a) { return reinterpret_cast<const channels::BarrierCore*>(static_cast<std::uintptr_t>(a)); };
        for (std::uint64_t n = in.rest.empty() ? 0 : in.number(); n > 0; --n) {
            Snapshot::Barrier b{barrier(in.number()), std::string(in.text()), 0, false};
            b.enrolled = static_cast<std::int64_t>(in.number());
            b.across = in.number() != 0;
            if (s.barrier_at.try_emplace(b.core, s.barriers.size()).second) s.barriers.push_back(std::move(b));
        }
        for (std::uint64_t n = in.rest.empty() ? 0 : in.number(); n > 0; --n) {
            Snapshot::Process p;
            p.name = std::string(in.text());
            p.doing = static_cast<Doing>(std::min<std::uint64_t>(in.number(), static_cast<std::uint64_t>(Doing::Ready)));
            p.joining = join(in.number());
            p.arrives = join(in.number());
            for (std::uint64_t w = in.number(); w > 0; --w) {
                const auto* c = core(in.number());
                const Side at = side(in.number());
                if (auto it = s.channel_at.find(c); it != s.channel_at.end()) p.waits.push_back({it->second, at});
            }
            for (std::uint64_t h = in.number(); h > 0; --h) {
                const auto* c = core(in.number());
                p.held.push_back({c, side(in.number())});
            }
            for (std::uint64_t w = in.number(); w > 0; --w) {
                if (auto it = s.barrier_at.find(barrier(in.number())); it != s.barrier_at.end()) p.syncs.push_back(it->second);
            }
            for (std::uint64_t h = in.number(); h > 0; --h) p.held_barriers.push_back(barrier(in.number()));
            p.os = k;
            s.processes.push_back(std::move(p));
        }
    }
    settle(s);
    return s;
}

// Graph: the wait-for graph of a snapshot. Nodes: processes (index < the
// number of processes), channel sides, Joins.
struct Graph {
    struct Node {
        enum Kind { Process, ChannelSide, Join, Barrier } kind;
        std::size_t index;  // of the process, the channel or the barrier
        Side needs = Side::Reader;  // ChannelSide: the side whose holders it waits for
        std::vector<std::size_t> next;
    };
    std::vector<Node> nodes;
    std::map<std::pair<std::size_t, Side>, std::size_t> sides;
    std::map<const void*, std::size_t> joins;
    std::map<std::pair<std::size_t, Side>, std::int64_t> held;  // ends held, per channel side waited on
    // Barriers waited at: their nodes (whose successors are the processes
    // enrolled on it that do not wait there), and the ends held of each.
    std::map<std::size_t, std::size_t> barriers;
    std::map<std::size_t, std::int64_t> enrolled_held;
};

Graph build(const Snapshot& s) {
    Graph g;
    const std::size_t procs = s.processes.size();
    for (std::size_t i = 0; i < procs; ++i) g.nodes.push_back({Graph::Node::Process, i, Side::Reader, {}});
    for (std::size_t i = 0; i < procs; ++i) {
        const auto& proc = s.processes[i];
        for (const auto& w : proc.waits) {
            const std::pair<std::size_t, Side> key{w.channel, other(w.side)};
            auto [it, fresh] = g.sides.try_emplace(key, g.nodes.size());
            if (fresh) g.nodes.push_back({Graph::Node::ChannelSide, w.channel, key.second, {}});
            g.nodes[i].next.push_back(it->second);
        }
        if (proc.joining) {
            auto [it, fresh] = g.joins.try_emplace(proc.joining, g.nodes.size());
            if (fresh) g.nodes.push_back({Graph::Node::Join, 0, Side::Reader, {}});
            g.nodes[i].next.push_back(it->second);
        }
        for (std::size_t b : proc.syncs) {
            auto [it, fresh] = g.barriers.try_emplace(b, g.nodes.size());
            if (fresh) g.nodes.push_back({Graph::Node::Barrier, b, Side::Reader, {}});
            g.nodes[i].next.push_back(it->second);
        }
    }
    for (std::size_t i = 0; i < procs; ++i) {
        const auto& proc = s.processes[i];
        if (proc.arrives) {
            if (auto it = g.joins.find(proc.arrives); it != g.joins.end()) g.nodes[it->second].next.push_back(i);
        }
        for (const auto& [core, side] : proc.held) {
            const std::pair<std::size_t, Side> key{s.channel_at.at(core), side};
            if (auto it = g.sides.find(key); it != g.sides.end()) {
                g.nodes[it->second].next.push_back(i);
                ++g.held[key];
            }
        }
        // Barriers: a process holding more ends of one than it waits there
        // with (one, or none) is what its phase waits for; and every end it
        // waits with counts as held, noted or not (a captured one, say).
        std::map<std::size_t, std::int64_t> noted;
        for (const auto* core : proc.held_barriers) ++noted[s.barrier_at.at(core)];
        for (std::size_t b : proc.syncs) noted.try_emplace(b, 0);
        for (const auto& [b, ends] : noted) {
            const auto it = g.barriers.find(b);
            if (it == g.barriers.end()) continue;
            const std::int64_t waiting = std::count(proc.syncs.begin(), proc.syncs.end(), b) > 0 ? 1 : 0;
            g.enrolled_held[b] += std::max(ends, waiting);
            if (ends > waiting) g.nodes[it->second].next.push_back(i);
        }
    }
    return g;
}

// cycles: up to kCyclesShown cycles, each the nodes along it, begun at a
// process, by one iterative depth-first walk.
std::vector<std::vector<std::size_t>> cycles(const Graph& g) {
    enum Colour : std::uint8_t { White, Grey, Black };
    std::vector<Colour> colour(g.nodes.size(), White);
    std::vector<std::vector<std::size_t>> found;
    std::vector<std::pair<std::size_t, std::size_t>> stack;  // (node, next edge)
    for (std::size_t start = 0; start < g.nodes.size() && found.size() < kCyclesShown; ++start) {
        if (colour[start] != White || g.nodes[start].kind != Graph::Node::Process) continue;
        stack.push_back({start, 0});
        colour[start] = Grey;
        while (!stack.empty() && found.size() < kCyclesShown) {
            auto& [n, e] = stack.back();
            if (e == g.nodes[n].next.size()) {
                colour[n] = Black;
                stack.pop_back();
                continue;
            }
            const std::size_t m = g.nodes[n].next[e++];
            if (colour[m] == White) {
                colour[m] = Grey;
                stack.push_back({m, 0});
            } else if (colour[m] == Grey) {
                // A back edge: the cycle is the stack from m on.
                std::vector<std::size_t> cycle;
                auto from = std::find_if(stack.begin(), stack.end(), [m](const auto& s) { return s.first == m; });
                for (auto it = from; it != stack.end(); ++it) cycle.push_back(it->first);
                auto first = std::find_if(cycle.begin(), cycle.end(),
                                          [&](std::size_t k) { return g.nodes[k].kind == Graph::Node::Process; });
                std::rotate(cycle.begin(), first, cycle.end());
                found.push_back(std::move(cycle));
            }
        }
        stack.clear();
    }
    return found;
}

std::string quoted(const std::string& s) {
    std::string q;
    q.reserve(s.size() + 2);
    return q.append(1, '\'').append(s).append(1, '\'');
}

std::string hop(const Snapshot& s, const Graph& g, std::size_t n) {
    const Graph::Node& node = g.nodes[n];
    switch (node.kind) {
    case Graph::Node::Process: {
        const auto& proc = s.processes[node.index];
        return "process " + quoted(proc.name) + (s.os.size() > 1 ? " (" + s.os[proc.os].short_name + ")" : "");
    }
    case Graph::Node::ChannelSide: return "channel " + quoted(s.channels[node.index].name);
    case Graph::Node::Join: return "the end of the processes it runs";
    case Graph::Node::Barrier: return "barrier " + quoted(s.barriers[node.index].name);
    }
    return {};
}

// Unheld: channel sides waited on with ends alive that no process holds.
struct Unheld {
    std::size_t channel;
    Side side;
    std::int64_t count;
};
std::vector<Unheld> unheld(const Snapshot& s, const Graph& g) {
    std::vector<Unheld> out;
    for (const auto& [key, node] : g.sides) {
        const auto [c, side] = key;
        const Snapshot::Channel& ch = s.channels[c];
        if (ch.across) continue;  // (ends in other OS processes or ranks too)
        const auto it = g.held.find(key);
        const std::int64_t n = ch.ends[static_cast<int>(side)] - (it == g.held.end() ? 0 : it->second);
        if (n > 0) out.push_back({c, side, n});
    }
    return out;
}

// unenrolled: barriers waited at with ends enrolled that no process holds,
// and how many.
std::vector<std::pair<std::size_t, std::int64_t>> unheld_barriers(const Snapshot& s, const Graph& g) {
    std::vector<std::pair<std::size_t, std::int64_t>> out;
    for (const auto& [b, node] : g.barriers) {
        const Snapshot::Barrier& barrier = s.barriers[b];
        if (barrier.across) continue;  // (members in other OS processes or ranks too)
        const auto it = g.enrolled_held.find(b);
        const std::int64_t n = barrier.enrolled - (it == g.enrolled_held.end() ? 0 : it->second);
        if (n > 0) out.push_back({b, n});
    }
    return out;
}

std::string explanation(const Snapshot& s, const Graph& g, const std::vector<std::vector<std::size_t>>& found) {
    std::ostringstream out;
    for (const auto& cycle : found) {
        out << "\n  wait-for cycle: ";
        for (std::size_t n : cycle) out << hop(s, g, n) << " -> ";
        out << hop(s, g, cycle.front());
    }
    for (const Unheld& u : unheld(s, g)) {
        out << "\n  channel " << quoted(s.channels[u.channel].name) << " has " << u.count << ' '
            << (u.side == Side::Reader ? "reader" : "writer") << " end" << (u.count == 1 ? "" : "s")
            << " that no running process holds as an argument (kept by main, by a Process never run, or in a "
               "captured copy), so that side never retires";
    }
    for (const auto& [b, n] : unheld_barriers(s, g)) {
        out << "\n  barrier " << quoted(s.barriers[b].name) << " has " << n << " enrolled end" << (n == 1 ? "" : "s")
            << " that no running process holds as an argument (kept by main, by a Process never run, or in a "
               "captured copy), so its phase never ends";
    }
    return out.str();
}

// ---------------------------------------------------------------------------
// DOT

// node_id('p', 3): "p3". (Built by appending: GCC 12 warns, wrongly, of an
// overlapping copy in "p" + std::to_string(i).)
std::string node_id(char kind, std::size_t i) {
    std::string id(1, kind);
    return id.append(std::to_string(i));
}

std::string dot_escaped(const std::string& text) {
    std::string out;
    for (char ch : text) {
        if (ch == '"' || ch == '\\') out += '\\';
        if (ch == '\n') {
            out += "\\n";
            continue;
        }
        out += ch;
    }
    return out;
}

const char* colour_of(Doing d) {
    switch (d) {
    case Doing::Running: return "#b7e4a5";
    case Doing::Ready: return "#e2f4da";
    case Doing::Reading: return "#a9cdf0";
    case Doing::Writing: return "#f5c28c";
    case Doing::Choosing: return "#d3b8ee";
    case Doing::Syncing: return "#d9c7a7";
    case Doing::Joining: return "#dddddd";
    case Doing::Timed: return "#f7ee9c";
    case Doing::Elsewhere: return "#bfe8e4";
    case Doing::Waiting: return "#eeeeee";
    }
    return "#ffffff";
}

const char* state_of(Doing d) {
    switch (d) {
    case Doing::Running: return "running";
    case Doing::Ready: return "ready to run";
    case Doing::Reading: return "blocked reading";
    case Doing::Writing: return "blocked writing";
    case Doing::Choosing: return "blocked in a choice";
    case Doing::Syncing: return "at a barrier";
    case Doing::Joining: return "waiting for its processes";
    case Doing::Timed: return "sleeping, timed or in io";
    case Doing::Elsewhere: return "waiting on another OS process or rank";
    case Doing::Waiting: return "waiting";
    }
    return "";
}

std::string dot(const Snapshot& s, const Graph& g, const std::vector<std::vector<std::size_t>>& found,
                const std::string& title) {
    // Edges on a cycle, drawn in red: process -> channel (it waits on the
    // channel), channel -> process (that process holds the end it waits
    // for), and the Join hops as process -> process.
    std::map<std::pair<std::string, std::string>, bool> red;
    auto id = [&](std::size_t n) -> std::string {
        const Graph::Node& node = g.nodes[n];
        if (node.kind == Graph::Node::Process) return node_id('p', node.index);
        if (node.kind == Graph::Node::ChannelSide) return node_id('c', node.index);
        if (node.kind == Graph::Node::Barrier) return node_id('b', node.index);
        return {};
    };
    for (const auto& cycle : found) {
        for (std::size_t i = 0; i < cycle.size(); ++i) {
            std::size_t a = cycle[i], b = cycle[(i + 1) % cycle.size()];
            if (g.nodes[b].kind == Graph::Node::Join) b = cycle[(i + 2) % cycle.size()];
            if (g.nodes[a].kind == Graph::Node::Join) continue;
            // (A hop from a channel to the holder of its writer end, or from a
            // barrier to a process enrolled on it, is drawn as the holder's
            // arrow into the channel or barrier.)
            if ((g.nodes[a].kind == Graph::Node::ChannelSide && g.nodes[a].needs == Side::Writer) ||
                g.nodes[a].kind == Graph::Node::Barrier) {
                red[{id(b), id(a)}] = true;
            } else {
                red[{id(a), id(b)}] = true;
            }
        }
    }
    std::ostringstream out;
    out << "digraph csp {\n  label=\"" << dot_escaped(title) << "\";\n  labelloc=t;\n  rankdir=LR;\n"
        << "  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n";
    // Processes, by OS process, grouped by the Parallel (Join) they arrive
    // at. (In the order of their first members, so that the file reads the
    // same from one run to the next.)
    std::vector<std::pair<std::pair<std::size_t, const void*>, std::vector<std::size_t>>> groups;
    std::map<std::pair<std::size_t, const void*>, std::size_t> group_at;
    std::map<const void*, std::size_t> parent;
    for (std::size_t i = 0; i < s.processes.size(); ++i) {
        const std::pair<std::size_t, const void*> key{s.processes[i].os, s.processes[i].arrives};
        auto [it, fresh] = group_at.try_emplace(key, groups.size());
        if (fresh) groups.push_back({key, {}});
        groups[it->second].second.push_back(i);
        if (s.processes[i].joining) parent[s.processes[i].joining] = i;
    }
    std::size_t cluster = 0;
    // One OS process's processes, in a cluster of its own.
    auto os_cluster = [&](std::size_t os) {
        out << "  subgraph cluster_os" << os << " {\n    label=\""
            << (s.os.empty() ? "OS process " + std::to_string(getpid()) : dot_escaped(s.os[os].title)) << "\";\n";
        // (One whose part is missing is drawn all the same: an empty
        // cluster would not be.)
        if (std::none_of(groups.begin(), groups.end(), [&](const auto& g) { return g.first.first == os; })) {
            out << "    os" << os << " [shape=plaintext, label=\"no processes seen\"];\n";
        }
        for (const auto& [key, members] : groups) {
            const auto [in_os, join] = key;
            if (in_os != os) continue;
            const bool grouped = join != nullptr;
            if (grouped) {
                out << "    subgraph cluster_" << cluster++ << " {\n      label=\"";
                if (auto it = parent.find(join); it != parent.end()) {
                    out << "run by " << dot_escaped(quoted(s.processes[it->second].name));
                } else {
                    out << "Parallel";
                }
                out << "\";\n      style=rounded;\n";
            }
            for (std::size_t i : members) {
                const auto& proc = s.processes[i];
                const bool on_cycle =
                    std::any_of(found.begin(), found.end(), [&](const auto& c) { return std::count(c.begin(), c.end(), i) > 0; });
                out << (grouped ? "      " : "    ") << "p" << i << " [shape=box, style=\"rounded,filled\", fillcolor=\""
                    << colour_of(proc.doing) << "\", label=\"" << dot_escaped(proc.name + "\n" + state_of(proc.doing))
                    << "\"" << (on_cycle ? ", color=red, penwidth=2" : "") << "];\n";
            }
            if (grouped) out << "    }\n";
        }
        out << "  }\n";
    };
    for (std::size_t os = 0; os < std::max<std::size_t>(s.os.size(), 1); ++os) os_cluster(os);
    for (std::size_t c = 0; c < s.channels.size(); ++c) {
        const auto& ch = s.channels[c];
        out << "  c" << c << " [shape=ellipse, label=\"" << dot_escaped(ch.name + "\n" + ch.kind) << "\"];\n";
    }
    for (std::size_t b = 0; b < s.barriers.size(); ++b) {
        const auto& barrier = s.barriers[b];
        out << "  b" << b << " [shape=octagon, label=\""
            << dot_escaped(barrier.name + "\nbarrier, " + std::to_string(barrier.enrolled) + " enrolled") << "\"];\n";
    }
    auto edge = [&](const std::string& a, const std::string& b, const char* label, const char* style) {
        const bool on_cycle = red.count({a, b}) > 0;
        out << "  " << a << " -> " << b << " [label=\"" << label << "\"" << style
            << (on_cycle ? ", color=red, fontcolor=red, penwidth=2" : "") << "];\n";
    };
    for (std::size_t i = 0; i < s.processes.size(); ++i) {
        const auto& proc = s.processes[i];
        const std::string p = node_id('p', i);
        // Ends held: a writer's arrow goes into its channel, a reader's out.
        for (const auto& [core, side] : proc.held) {
            const std::string c = node_id('c', s.channel_at.at(core));
            if (side == Side::Writer) edge(p, c, "writer end", "");
            else edge(c, p, "reader end", "");
        }
        // Waits (dashed), from the waiting process to what it waits for.
        for (const auto& w : proc.waits) {
            edge(p, node_id('c', w.channel), w.side == Side::Reader ? "waits to read" : "waits to write",
                 ", style=dashed");
        }
        // Barriers: an end enrolled (not drawn where it waits: the wait says
        // so), and a wait there.
        for (const auto* core : proc.held_barriers) {
            const std::size_t b = s.barrier_at.at(core);
            if (std::find(proc.syncs.begin(), proc.syncs.end(), b) == proc.syncs.end()) {
                edge(p, node_id('b', b), "enrolled", "");
            }
        }
        for (std::size_t b : proc.syncs) edge(p, node_id('b', b), "waits to sync", ", style=dashed");
        if (proc.joining) {
            for (std::size_t k = 0; k < s.processes.size(); ++k) {
                if (s.processes[k].arrives == proc.joining) edge(p, node_id('p', k), "waits for", ", style=dotted");
            }
        }
    }
    out << "}\n";
    return out.str();
}

// write_file writes beside `path` and renames into place: whoever reads the
// file (a viewer, a test, the next writer) sees a whole graph, old or new.
bool write_file(const std::string& path, const std::string& text) {
    const std::string beside = path + "." + std::to_string(getpid()) + ".tmp";  // (OS processes may draw at once)
    {
        std::ofstream file(beside, std::ios::trunc);
        file << text;
        file.flush();
        if (!file) return false;
    }
    return std::rename(beside.c_str(), path.c_str()) == 0;
}

// CSP_GRAPH: the path, read once, when libcsp is loaded; written by the OS
// process that read it (a forked child's graph would overwrite its
// parent's). Never destroyed: the runtime's exit may come after static
// destructors.
struct GraphEnv {
    std::string path;
    pid_t pid = 0;
    std::atomic<bool> deadlock_written{false};
    // A deadlock's graph, made under the registry's lock by the explainer
    // and written once the deadlock is broken (deadlock_reported).
    std::mutex pending_lock;
    std::string pending;
    GraphEnv() {
        if (const char* p = std::getenv("CSP_GRAPH"); p && *p) {
            path = p;
            pid = getpid();
        }
    }
    bool here() const noexcept { return !path.empty() && getpid() == pid; }
};
GraphEnv& graph_env() {
    static GraphEnv* env = new GraphEnv;
    return *env;
}

// Whoever writes CSP_GRAPH's file (a deadlock, SIGUSR1, the exit) holds
// g_drawing.
std::mutex g_drawing;

std::string explain(const std::vector<runtime::Parker*>& parked) {
    const Snapshot s = take(parked, true);
    const Graph g = build(s);
    const auto found = cycles(g);
    GraphEnv& env = graph_env();
    if (env.here()) {
        std::string text = dot(s, g, found, "csp: deadlock");
        std::lock_guard hold(env.pending_lock);
        env.pending = std::move(text);
    }
    return explanation(s, g, found);
}

// explain_across: a deadlock across OS processes, joined by whichever OS
// process breaks it: the wait-for cycle through them all for the report,
// and with CSP_GRAPH (inherited by every child) the graph, written by that
// OS process and marked as written in the arena (the exit's graph and
// SIGUSR1's leave it).
std::string explain_across(const std::vector<std::pair<std::string, std::string>>& titled_parts) {
    const Snapshot s = joined(titled_parts);
    const Graph g = build(s);
    const auto found = cycles(g);
    const GraphEnv& env = graph_env();
    if (!env.path.empty()) {
        // (g_drawing only where it is this OS process's own: a child's copy
        // may have been taken at the fork by a thread it does not have.)
        std::unique_lock<std::mutex> hold(g_drawing, std::defer_lock);
        if (env.here()) hold.lock();
        if (write_file(env.path, dot(s, g, found, "csp: deadlock across OS processes"))) {
            runtime::note_across_graph_drawn();
        } else {
            runtime::logger().warn("CSP_GRAPH: cannot write {}", env.path);
        }
    }
    return explanation(s, g, found);
}

void deadlock_reported() noexcept {
    GraphEnv& env = graph_env();
    if (!env.here()) return;
    std::string text;
    {
        std::lock_guard hold(env.pending_lock);
        text.swap(env.pending);
    }
    if (text.empty()) return;
    try {
        std::lock_guard hold(g_drawing);
        if (write_file(env.path, text)) env.deadlock_written.store(true);
        else runtime::logger().warn("CSP_GRAPH: cannot write {}", env.path);
    } catch (...) {
    }
}

// SIGUSR1 (with CSP_GRAPH): the graph of that moment. SIGUSR1 is blocked in
// the thread that loads libcsp (main, for a program linked with it), so in
// every thread made after it (the runtime's and the program's), and a
// thread of its own takes it with sigwaitinfo and writes the graph: no
// signal handler, so nothing has to be async-signal-safe, and the signal is
// taken at once even when every other thread sleeps (ThreadSanitizer runs a
// handler only when its thread next wakes). That thread never uses csp: it
// is not registered, and it tells the deadlock detector so, which would
// otherwise take it for one that might still wake somebody. Once the
// runtime has begun to stop (runtime::ending: at exit, before the exit's
// graph, or an exit() from inside a process) it draws no more; `g_drawing`
// keeps the exit from going on while it draws; and it leaves a deadlock's
// graph alone. (A forked child inherits the blocked
// signal but not the thread: its SIGUSR1 stays pending. Threads that exist
// before libcsp loads, and programs exec'd by the network, are not covered:
// the first may take the signal (and end the program), the second inherit
// it blocked.)

void draw_on_signal(sigset_t usr1) noexcept {
    for (;;) {
        if (sigwaitinfo(&usr1, nullptr) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        std::lock_guard hold(g_drawing);
        if (runtime::ending()) return;  // (set before the exit's graph: it is the last)
        if (graph_env().deadlock_written.load() || runtime::across_graph_drawn()) {  // (worth more than this one)
            runtime::logger().warn("CSP_GRAPH: SIGUSR1 leaves {} as it is: it holds a deadlock", graph_env().path);
            continue;
        }
        try {
            write_graph(graph_env().path);
        } catch (const std::exception& e) {
            runtime::logger().warn("CSP_GRAPH (SIGUSR1): {}", e.what());
        } catch (...) {
        }
    }
}

void listen_for_usr1() noexcept {
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    if (pthread_sigmask(SIG_BLOCK, &usr1, nullptr) != 0) return;
    // (It is counted out of the deadlock detector's threads before anything
    // goes on: started, it says so, and only then does this go on.)
    std::atomic<bool> counted_out{false};
    try {
        std::thread([&counted_out, usr1] {
            runtime::ignore_this_thread();
            counted_out.store(true, std::memory_order_release);
            draw_on_signal(usr1);
        }).detach();
    } catch (const std::system_error& e) {
        runtime::logger().warn("CSP_GRAPH: no thread for SIGUSR1: {}", e.what());
        pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
        return;
    }
    while (!counted_out.load(std::memory_order_acquire)) std::this_thread::yield();
}

// At exit (main's runtime stopping): the network as it is then, unless a
// deadlock's graph is there.
void graph_at_exit() noexcept {
    GraphEnv& env = graph_env();
    if (!env.here()) return;
    std::lock_guard hold(g_drawing);  // (a graph on SIGUSR1 is finished first; none comes after)
    if (env.deadlock_written.load() || runtime::across_graph_drawn()) return;
    try {
        write_graph(env.path);
    } catch (const std::exception& e) {
        runtime::logger().warn("CSP_GRAPH: {}", e.what());
    } catch (...) {
    }
}

}  // namespace

void forget_held_end(const channels::ChannelCore* c, bool reader) noexcept {
    if (!runtime::in_fiber()) return;
    if (auto* body = dynamic_cast<BodyBase*>(runtime::body_of(runtime::current()))) body->forget_end(c, reader);
}

void forget_held_barrier(const channels::BarrierCore* b) noexcept {
    if (!runtime::in_fiber()) return;
    if (auto* body = dynamic_cast<BodyBase*>(runtime::body_of(runtime::current()))) body->forget_barrier(b);
}

void explain_deadlocks() noexcept {
    runtime::set_deadlock_explainer(&explain, &deadlock_reported);
    runtime::set_across_explainer(&part_of, &explain_across);
    if (graph_env().here()) {  // (read now, in the OS process that loads libcsp)
        runtime::set_exit_hook(&graph_at_exit);
        listen_for_usr1();
    }
}

}  // namespace detail

void write_graph(const std::string& path) {
    struct Taken {
        detail::Snapshot s;
    } taken;
    // Every OS process of the network, and every MPI rank, each a cluster
    // (one that does not answer within a second is drawn as such); or this
    // OS process alone.
    constexpr std::chrono::milliseconds kWait{1000};
    auto parts = runtime::parts_across(kWait);
    if (channels::Distribution* d = channels::distribution()) {
        auto ranks = d->view_ranks(parts, kWait);
        if (!ranks.empty()) parts = std::move(ranks);
    }
    if (!parts.empty()) {
        taken.s = detail::joined(parts);
    } else {
        runtime::with_registered(
            [](const std::vector<runtime::Parker*>& all, void* ctx) {
                static_cast<Taken*>(ctx)->s = detail::take(all, false);
            },
            &taken);
    }
    const detail::Graph g = detail::build(taken.s);
    const auto found = detail::cycles(g);
    if (!detail::write_file(path, detail::dot(taken.s, g, found, "csp network"))) {
        throw UsageError("csp::write_graph: cannot write " + path);
    }
}

}  // namespace csp
