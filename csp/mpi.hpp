// mpi.hpp: one network across machines, processes placed on MPI ranks.
//
//   int main(int argc, char** argv) {
//       csp::mpi::World world{argc, argv};   // MPI_Init_thread ... MPI_Finalize
//       csp::Channel<Job> jobs{"jobs"};      // made in the same order on every rank: one channel
//       csp::Channel<Result> results{"results", csp::buffer(16)};
//       auto [sent, per_worker, total] = csp::Parallel(
//           csp::on_rank(0, source(jobs.writer())),
//           csp::spread(worker(jobs.reader(), results.writer()) * 8),  // round-robin over ranks
//           csp::on_rank(0, collector(results.reader())));
//   }
//   // mpirun -np 4 ./farm        (without mpirun: one rank, everything local)
//
// The program is SPMD: every rank runs main and evaluates the same
// combinators. on_rank(r, p) runs p on rank r only; spread(v) runs member i
// on rank i % size; an unplaced process runs on every rank. A channel made
// outside any process, after the World, is one channel of the whole job
// (matched across ranks by the order channels are made, checked by name).
// It lives on one rank, its home, chosen as the next combinator (Parallel,
// Sequence, Spawn) starts, or at its first use from main if that comes
// first: the rank of the processes placed to read it (else of those placed
// to write it), so values travel towards their readers. A program that uses
// a shared channel from main does so on every rank or on none (the ranks
// would choose differently: the job stops, naming the channel).
// In a simulation (csp/sim.hpp) placed processes all run here, as fibers.
// Parallel returns on every rank with every result: a placed process's
// result (or its failure) is sent to every rank. Link with libcsp-mpi
// (pkg-config csp-mpi).
//
// What works across ranks so far: reads and writes (unbuffered and buffered,
// any number of readers and writers on any ranks), retire counted over all
// ranks, poison from any rank, the unwinding rule, results and failures,
// deadlocks reported on every rank, alternation over channels of any rank,
// extended reads and extended input guards, and barriers (plain and alting)
// made in the SPMD part. Any use of a shared channel or barrier from a
// csp::multiprocess child (it cannot reach MPI) throws csp::UsageError.
#pragma once

#include "csp/errors.hpp"
#include "csp/process.hpp"
#include "csp/serialize.hpp"
#include "csp/detail/ends.hpp"
#include "csp/detail/storage.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace csp::mpi {

// World: the MPI environment of this program, from construction (MPI_Init_thread)
// to destruction (every rank's network has ended, then MPI_Finalize). One at
// a time, made in main before the channels it shares.
class World {
public:
    World(int& argc, char**& argv);
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    int rank() const noexcept;
    int size() const noexcept;
};

// rank / size: this rank and the number of ranks (0 and 1 without a World).
int rank() noexcept;
int size() noexcept;

namespace detail {
// (The placed processes' results; mpi/world.cpp.)
std::uint64_t next_placement() noexcept;
void publish_result(std::uint64_t id, channels::Parcel* result) noexcept;
void publish_failure(std::uint64_t id, const std::string& type, const std::string& what) noexcept;
// await_result: the result of placement `id` (a parcel to free), or its
// failure (null; type and what set).
channels::Parcel* await_result(std::uint64_t id, std::string& type, std::string& what);
[[noreturn]] void throw_bad_rank(int r);
// check_placement: r is a rank, and the caller is main outside any process.
void check_placement(int r);
// note_placement: the process of `call` runs on rank r: the shared channels
// of the ends among its arguments may get their home there (mpi/channels.cpp).
void note_placement(int r, const csp::detail::BodyBase& call) noexcept;
// home_rank: the home rank of the shared channel of an end (-1: not shared,
// or its home not chosen yet). For tests.
int home_rank(const channels::ChannelCore* c) noexcept;
[[noreturn]] void throw_not_copyable();

// Placed: what a placed process's body holds, which refuses to be copied
// (Process<R> * n, say): copies would share one placement's result.
template <class T>
struct Placed {
    T held;
    explicit Placed(T t) : held(std::move(t)) {}
    Placed(Placed&&) noexcept = default;
    Placed& operator=(Placed&&) noexcept = default;
    Placed(const Placed& other) : held(other.held) { throw_not_copyable(); }
    Placed& operator=(const Placed&) = delete;
};
std::string failure_type(std::exception_ptr e);
std::string failure_what(std::exception_ptr e);

template <class F>
auto make_process(std::string name, F f) {
    using R = std::invoke_result_t<F&>;
    return Process<R>(std::move(name), std::make_unique<csp::detail::BoundCall<R, F>>(std::move(f)));
}
}  // namespace detail

}  // namespace csp::mpi

namespace csp {

// on_rank(r, p): p runs on rank r only; every rank's Parallel gets its
// result (or its failure, as a ProcessError naming the process and r).
template <class R>
Process<R> on_rank(int r, Process<R> p) {
    using T = csp::detail::result_t<R>;
    static_assert(std::is_void_v<R> || Transferable<T>,
                  "csp::on_rank: the process's result must cross ranks (trivially copyable, or cereal-serializable)");
    // In a simulation (csp/sim.hpp) every placed process runs here, as a
    // fiber, whatever its rank and however many ranks there are: a network
    // written for many ranks is checked in one OS process.
    if (runtime::simulating()) {
        if (r < 0) mpi::detail::throw_bad_rank(r);
        std::string name = p.name() + " on rank " + std::to_string(r);
        return std::move(p).named(std::move(name));
    }
    const int size = mpi::size();
    if (size == 1) {
        if (r != 0) mpi::detail::throw_bad_rank(r);
        return p;
    }
    mpi::detail::check_placement(r);
    if (const auto& call = csp::detail::call_of(p)) mpi::detail::note_placement(r, *call);
    const std::uint64_t id = mpi::detail::next_placement();
    std::string name = p.name() + " on rank " + std::to_string(r);
    if (mpi::rank() == r) {
        return mpi::detail::make_process(name, [id, q = mpi::detail::Placed<Process<R>>(std::move(p))]() mutable -> R {
            try {
                T result = std::get<0>(Parallel(std::move(q.held)));
                mpi::detail::publish_result(id, csp::detail::pack_value<T>(&result));
                if constexpr (!std::is_void_v<R>) return result;
            } catch (const ProcessError& e) {
                mpi::detail::publish_failure(id, mpi::detail::failure_type(e.original()),
                                             mpi::detail::failure_what(e.original()));
                e.rethrow_original();
            } catch (...) {  // (a DeadlockError: the others must not wait for a result)
                mpi::detail::publish_failure(id, mpi::detail::failure_type(std::current_exception()),
                                             mpi::detail::failure_what(std::current_exception()));
                throw;
            }
        });
    }
    // Elsewhere p's ends leave here and now (it runs on rank r, with ends of
    // its own): a parameter would live until the whole Parallel(...) has
    // returned, and its ends would keep their channels from retiring.
    // (Barriers of ends and handles among them count it as a member elsewhere
    // until its result is here: see t_placed_elsewhere.)
    auto elsewhere = std::make_shared<csp::detail::PlacedElsewhere>();
    {
        Process<R> gone = std::move(p);
    }
    elsewhere->listed();
    return mpi::detail::make_process(name, [id = mpi::detail::Placed<std::uint64_t>(id), elsewhere]() -> R {
        struct Over {
            csp::detail::PlacedElsewhere& marks;
            ~Over() { marks.end(); }
        } over{*elsewhere};
        std::string type, what;
        channels::Parcel* got = mpi::detail::await_result(id.held, type, what);
        if (!got) {
            // (A deadlock ended it there: it is this rank's deadlock too.)
            if (type == "csp::DeadlockError") throw DeadlockError(what);
            throw RemoteError(type, what);
        }
        alignas(T) unsigned char value[sizeof(T)];
        const bool ok = csp::detail::unpack_value<T>(got, value);
        channels::parcel_free(got);
        if (!ok) throw RemoteError("csp::UsageError", "the result could not be unpacked");
        T result = csp::detail::take_out<T>(value);
        if constexpr (!std::is_void_v<R>) return result;
    });
}

// spread(v): one process whose members run round-robin over the ranks
// (member i on rank i % size); its result is every member's, in order.
template <class R>
Process<std::vector<csp::detail::result_t<R>>> spread(std::vector<Process<R>> members) {
    std::vector<Process<R>> placed;
    placed.reserve(members.size());
    const int size = mpi::size();
    for (std::size_t i = 0; i < members.size(); ++i) {
        placed.push_back(on_rank(static_cast<int>(i % static_cast<std::size_t>(size)), std::move(members[i])));
    }
    return mpi::detail::make_process("spread", [v = mpi::detail::Placed<std::vector<Process<R>>>(std::move(placed))]() mutable {
        return Parallel(std::move(v.held));
    });
}

}  // namespace csp
