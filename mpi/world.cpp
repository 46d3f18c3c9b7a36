// world.cpp: csp::mpi::World (MPI's life in this program) and the results of
// placed processes (csp::on_rank, csp::spread in csp/mpi.hpp).
//
// A placed process is numbered in the order the program places it (the same
// on every rank: SPMD). Its rank sends its result, or its failure, to every
// other rank, where a stand-in process waits for it.
#include "csp/mpi.hpp"

#include "channels/remote.hpp"
#include "mpi/comm.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <chrono>
#include <cstring>
#include <string>
#include <vector>
#include <cxxabi.h>
#include <map>
#include <mutex>
#include <thread>

namespace csp::mpi {

namespace detail {
channels::Distribution* shared_channels() noexcept;
void release_shared_channels() noexcept;

namespace {
int g_rank = 0;
int g_size = 1;
bool g_have_world = false;
std::thread::id g_world_thread;
MPI_Comm g_world_comm = MPI_COMM_NULL;
std::atomic<std::uint64_t> g_placements{0};

// What a stand-in process waits for.
struct Arrival {
    bool failed = false;
    int rank = 0;
    std::string type, what;
    channels::Parcel* result = nullptr;
};
struct Awaiting {
    Pending pending;
    Arrival arrival;
};
std::mutex g_results_lock;
std::map<std::uint64_t, Arrival> g_arrived;     // came before anybody waited
std::map<std::uint64_t, Awaiting*> g_awaiting;  // waited for before it came

void broadcast(const Header& h, const void* payload, std::size_t n) {
    for (int r = 0; r < g_size; ++r) {
        if (r != g_rank) g_comm->post(r, h, payload, n);
    }
}
}  // namespace

bool in_spmd_part() noexcept { return std::this_thread::get_id() == g_world_thread && !runtime::in_fiber(); }

std::uint64_t next_placement() noexcept { return ++g_placements; }

void publish_result(std::uint64_t id, channels::Parcel* result) noexcept {
    if (!result) {
        publish_failure(id, "csp::UsageError", "the process's result could not be packed for the other ranks");
        return;
    }
    Header h{Kind::Result};
    h.chan = id;
    broadcast(h, result->data(), result->size);
    channels::parcel_free(result);
}

void publish_failure(std::uint64_t id, const std::string& type, const std::string& what) noexcept {
    Header h{Kind::Failure};
    h.chan = id;
    h.a = static_cast<std::uint32_t>(g_rank);
    std::string payload = type;
    payload.push_back('\0');
    payload += what;
    broadcast(h, payload.data(), payload.size());
}

channels::Parcel* await_result(std::uint64_t id, std::string& type, std::string& what) {
    struct Wait {
        std::uint64_t id;
        Awaiting awaiting;
    } wait{id, {}};
    wait.awaiting.pending.parker = runtime::current();
    wait.awaiting.pending.token = runtime::begin_wait(wait.awaiting.pending.parker);
    static constexpr runtime::WaitReason kAwaiting{"is waiting for the result of a process on another rank"};
    const RankWait counted;
    const std::uint32_t word = runtime::park(wait.awaiting.pending.parker, runtime::WaitKind::RankJoin, &kAwaiting,
                  runtime::Release{[](void* arg) noexcept {
                                       auto* w = static_cast<Wait*>(arg);
                                       std::unique_lock<std::mutex> hold(g_results_lock);
                                       auto it = g_arrived.find(w->id);
                                       if (it == g_arrived.end()) {
                                           g_awaiting[w->id] = &w->awaiting;
                                           return;
                                       }
                                       w->awaiting.arrival = std::move(it->second);
                                       g_arrived.erase(it);
                                       hold.unlock();
                                       finish(&w->awaiting.pending, channels::encode(channels::Outcome::Done, 0));
                                   },
                                   &wait});
    if (word == runtime::kDeadlocked) {  // (not from the breaker: RankJoin waits are left to end)
        {
            std::lock_guard<std::mutex> hold(g_results_lock);
            g_awaiting.erase(id);  // (its record is on this stack)
        }
        throw DeadlockError(runtime::deadlock_report());
    }
    Arrival& a = wait.awaiting.arrival;
    if (!a.failed) return a.result;
    type = a.type;
    // (A failure's process is named with its rank (csp::on_rank); a
    // deadlock's report is the whole job's, from that rank.)
    what = a.type == "csp::DeadlockError" ? a.what + " (on rank " + std::to_string(a.rank) + ")" : a.what;
    return nullptr;
}

void on_world_message(Message& m) {
    const Header& h = m.header();
    Arrival arrival;
    if (h.kind == Kind::Failure) {
        arrival.failed = true;
        arrival.rank = static_cast<int>(h.a);
        const std::string payload(m.payload(), m.payload_size());
        const std::size_t split = payload.find('\0');
        arrival.type = payload.substr(0, split);
        arrival.what = split == std::string::npos ? "" : payload.substr(split + 1);
    } else {
        try {
            arrival.result = m.take_parcel();
        } catch (const std::bad_alloc&) {
            arrival.failed = true;
            arrival.type = "std::bad_alloc";
            arrival.what = "no memory for a result from another rank";
        }
    }
    // Under the lock to the end: a waiter whose wait a deadlock ended takes
    // itself out under it, and its record (on its stack) must not be
    // written after that.
    std::lock_guard<std::mutex> hold(g_results_lock);
    auto it = g_awaiting.find(h.chan);
    if (it == g_awaiting.end()) {
        g_arrived[h.chan] = std::move(arrival);
        return;
    }
    Awaiting* waiter = it->second;
    g_awaiting.erase(it);
    waiter->arrival = std::move(arrival);
    finish(&waiter->pending, channels::encode(channels::Outcome::Done, 0));
}

void check_placement(int r) {
    if (!in_spmd_part()) {
        throw UsageError("csp::on_rank / csp::spread: only main places processes, outside any process (every rank "
                         "must place the same processes in the same order)");
    }
    if (r < 0 || r >= g_size) throw_bad_rank(r);
}

void throw_not_copyable() {
    throw UsageError("csp: a process placed on a rank cannot be copied (its result would come to one copy only); "
                     "place copies instead: csp::spread(p * n), or csp::on_rank(r, p) for each");
}

void throw_bad_rank(int r) {
    throw UsageError("csp::on_rank(" + std::to_string(r) + ", ...): there are ranks 0 to " +
                     std::to_string(g_size - 1));
}

std::string failure_type(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const RemoteError& x) {
        return x.type_name();
    } catch (...) {
        if (auto* t = abi::__cxa_current_exception_type()) {
            int status = 0;
            char* readable = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
            std::string name = status == 0 && readable ? readable : t->name();
            std::free(readable);
            return name;
        }
    }
    return "unknown exception";
}

std::string failure_what(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
    }
    return "";
}

namespace {

// With CSP_TRACE, every rank's events go to rank 0, which writes them with
// its own (a group per rank) in its file. Both steps are collective, on
// csp's communicator, by main, while nothing else uses MPI (before the
// communication thread starts, after it has stopped), and only if some rank
// traces: asked once, as the World starts (CSP_TRACE is read at load).
bool g_anyone_traces = false;

// align_trace, as the World starts: each rank's trace counts from rank 0's
// start. Rank 0 reads its steady clock around a ping to each rank, which
// answers with its own (Cristian's estimate; exact on one machine, where the
// clock is shared), and tells it the offset and its start. Flow ids and
// pids get the rank in high bits: ranks number their channels, and on
// several machines their pids, alike.
void align_trace() {
    int tracing = runtime::tracing() ? 1 : 0, anyone = 0;
    MPI_Allreduce(&tracing, &anyone, 1, MPI_INT, MPI_MAX, g_world_comm);
    g_anyone_traces = anyone != 0;
    if (!g_anyone_traces) return;
    constexpr int kTag = 7;
    const auto now = [] {
        return static_cast<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
    };
    if (g_rank == 0) {
        for (int r = 1; r < g_size; ++r) {
            long long ping = 0, theirs = 0;
            const long long t0 = now();
            MPI_Send(&ping, 1, MPI_LONG_LONG, r, kTag, g_world_comm);
            MPI_Recv(&theirs, 1, MPI_LONG_LONG, r, kTag, g_world_comm, MPI_STATUS_IGNORE);
            const long long t1 = now();
            const long long told[2] = {theirs - (t0 + t1) / 2, static_cast<long long>(runtime::trace_start_ns())};
            MPI_Send(told, 2, MPI_LONG_LONG, r, kTag, g_world_comm);
        }
        return;
    }
    long long ping = 0, told[2] = {0, 0};
    MPI_Recv(&ping, 1, MPI_LONG_LONG, 0, kTag, g_world_comm, MPI_STATUS_IGNORE);
    const long long mine = now();
    MPI_Send(&mine, 1, MPI_LONG_LONG, 0, kTag, g_world_comm);
    MPI_Recv(told, 2, MPI_LONG_LONG, 0, kTag, g_world_comm, MPI_STATUS_IGNORE);
    // Rank 0's start on this rank's clock: its start plus the offset.
    runtime::trace_align(told[1] + told[0], std::uint64_t(g_rank) << 56, g_rank << 22);
}

// gather_trace, as the World ends: the parts to rank 0.
void gather_trace() {
    if (!g_anyone_traces) return;
    std::string part;
    if (g_rank != 0) {
        try {
            part = runtime::trace_hand_over();
        } catch (const std::bad_alloc&) {
            part.clear();  // (this rank's events are lost; the others' still go)
        }
    }
    int size = static_cast<int>(part.size());
    std::vector<int> sizes(static_cast<std::size_t>(g_size)), at(static_cast<std::size_t>(g_size));
    MPI_Gather(&size, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, g_world_comm);
    std::string all;
    if (g_rank == 0) {
        int total = 0;
        for (int r = 0; r < g_size; ++r) {
            at[static_cast<std::size_t>(r)] = total;
            total += sizes[static_cast<std::size_t>(r)];
        }
        all.resize(static_cast<std::size_t>(total));
    }
    MPI_Gatherv(part.data(), size, MPI_CHAR, all.data(), sizes.data(), at.data(), MPI_CHAR, 0, g_world_comm);
    if (g_rank == 0) runtime::trace_take_in(all);
}

}  // namespace

}  // namespace detail

World::World(int& argc, char**& argv) {
    if (detail::g_have_world) throw UsageError("csp::mpi::World: there is one already");
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    if (provided < MPI_THREAD_SERIALIZED) {
        runtime::log_fatal("csp mpi: this MPI does not let a thread other than main call it "
                           "(MPI_THREAD_SERIALIZED or better is needed)");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &detail::g_world_comm);
    MPI_Comm_rank(detail::g_world_comm, &detail::g_rank);
    MPI_Comm_size(detail::g_world_comm, &detail::g_size);
    detail::g_have_world = true;
    detail::g_world_thread = std::this_thread::get_id();
    if (detail::g_size > 1) {
        if (runtime::tracing()) {
            runtime::trace_os_process_name("rank " + std::to_string(detail::g_rank) + " (" +
                                           program_invocation_short_name + ")");
        }
        detail::align_trace();
    }
    runtime::ignore_threads_started_so_far();  // (MPI's own: they never touch a channel)
    detail::g_placements.store(0);
    if (detail::g_size > 1) {
        (void)runtime::rt();  // (the runtime first: the communication thread readies its processes)
        detail::g_comm = new detail::Comm(detail::g_world_comm, detail::g_rank, detail::g_size);
        channels::g_distribution.store(detail::shared_channels(), std::memory_order_release);
        detail::start_detector();
        detail::open_views(detail::g_rank);
    }
}

World::~World() {
    detail::close_views();  // (before the communication thread goes: a view may be asking)
    runtime::set_rank_quiet_hook(nullptr);
    channels::g_distribution.store(nullptr, std::memory_order_release);
    if (detail::g_comm) {
        detail::g_comm->stop();
        detail::release_shared_channels();
        delete detail::g_comm;
        detail::g_comm = nullptr;
    }
    if (detail::g_size > 1) detail::gather_trace();
    MPI_Comm_free(&detail::g_world_comm);
    MPI_Finalize();
    detail::g_have_world = false;
    detail::g_rank = 0;
    detail::g_size = 1;
}

int World::rank() const noexcept { return detail::g_rank; }
int World::size() const noexcept { return detail::g_size; }

int rank() noexcept { return detail::g_rank; }
int size() noexcept { return detail::g_size; }

}  // namespace csp::mpi
