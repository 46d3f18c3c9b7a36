// multiprocess.cpp: the non-template parts of OS-process placement and of
// packing values for other OS processes.
//
// How one multiprocess runs (see docs/internals.md, "OS processes"):
//   1. run_os_process (runtime) forks on an io helper thread; the calling
//      fiber waits as for any io call.
//   2. The parent, right after the fork, destroys its copy of the child's
//      call with t_forgetting set: the ends and channel handles in it do not
//      leave their channels (the child's copies own those counts now) but
//      are listed. That list is exactly the channels (and barriers) the
//      child holds. Each is marked as crossing OS processes (so writers pack
//      values for it) and kept referenced, to be poisoned if the child dies.
//   3. Only then does the parent let the child start (the `go` word).
//   4. The child runs the call on a fresh runtime of its own as the one
//      process of a Parallel, leaves its result or failure in the record,
//      flushes its output and _exits.
//   5. The parent reaps it, poisons its channels if it died, and returns
//      the result or throws.
#include "csp/multiprocess.hpp"

#include "runtime/arena.hpp"
#include "runtime/futex.hpp"
#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <algorithm>
#include <cstring>
#include <cxxabi.h>
#include <tuple>
#include <sys/wait.h>
#include <new>
#include <system_error>

namespace csp::detail {

namespace {

std::string demangle(const char* mangled) {
    int status = 0;
    char* readable = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string name = status == 0 && readable ? readable : mangled;
    std::free(readable);
    return name;
}

channels::Parcel* pack_string(const std::string& s) noexcept {
    try {
        channels::Parcel* p = channels::parcel_new(s.size());
        std::memcpy(p->data(), s.data(), s.size());
        return p;
    } catch (...) {
        return nullptr;
    }
}

std::string unpack_string(channels::Parcel* p) {
    return p ? std::string(reinterpret_cast<const char*>(p->data()), p->size) : std::string();
}

}  // namespace

void log_pack_failure(const char* type, const char* what) noexcept {
    runtime::logger().error("a value of type {} could not be packed or unpacked for another OS "
                            "process: {}", demangle(type), what);
}

namespace {
// A writer packs its value on its own thread, before it takes the channel's
// lock, and learns of the failure before it could switch threads: so a
// thread-local holds the exception between the two.
thread_local std::exception_ptr t_pack_failure;
}  // namespace

void note_pack_failure(const char* type, std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        runtime::logger().debug("a value of type {} could not be packed: {}", demangle(type), x.what());
    } catch (...) {
    }
    t_pack_failure = std::move(e);
}

std::exception_ptr take_pack_failure() noexcept { return std::exchange(t_pack_failure, nullptr); }

// ---- running a child ------------------------------------------------------------

namespace {
// failure_of: the type name and message a parent gets for exception e.
std::pair<std::string, std::string> failure_of(std::exception_ptr e) {
    std::string type = "unknown exception", message;
    try {
        std::rethrow_exception(e);
    } catch (const RemoteError& x) {  // from a grandchild: keep the original's type
        type = x.type_name();
        message = x.what();
    } catch (const std::exception& x) {
        type = demangle(abi::__cxa_current_exception_type()->name());
        message = x.what();
    } catch (...) {
        if (auto* t = abi::__cxa_current_exception_type()) type = demangle(t->name());
    }
    return {type, message};
}
}  // namespace

void throw_as_remote(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const ChannelPoisonException&) {
        throw;  // (ends the process as a child's poison does)
    } catch (const ChannelRetireException&) {
        throw;
    } catch (...) {
    }
    auto [type, message] = failure_of(e);
    throw RemoteError(std::move(type), message);
}

void record_failure(ChildRecord* rec, std::exception_ptr e) noexcept {
    std::string type = "unknown exception", message;
    try {
        std::tie(type, message) = failure_of(e);
    } catch (...) {  // (out of memory: the defaults)
    }
    rec->error_type = pack_string(type);
    rec->error_message = pack_string(message);
    rec->state = ChildRecord::kFailed;
}

void free_record(ChildRecord* rec) noexcept {
    if (!rec) return;
    channels::parcel_free(rec->result);
    channels::parcel_free(rec->error_type);
    channels::parcel_free(rec->error_message);
    runtime::arena_free(rec->tally);  // (EndTally is trivially destructible)
    runtime::arena_delete(rec);
}

namespace {

struct ForkState {
    const ForkSpec* spec;
    ChildRecord* rec;
    Forgotten forgotten;                       // what the parent's copy of the call held
    std::vector<channels::ChannelCore*> held;  // the channels the child holds
    std::vector<channels::BarrierCore*> barriers;  // and the barriers
    int pid = 0;
};

void child_side(void* arg) noexcept {
    auto* s = static_cast<ForkState*>(arg);
    try {
        const std::string name = "multiprocess '" + *s->spec->name + "'";
        runtime::name_os_process(name);
        if (runtime::tracing()) runtime::trace_os_process_name(name);
    } catch (const std::bad_alloc&) {  // (unnamed)
    }
    while (s->rec->go.load(std::memory_order_acquire) == 0) runtime::futex_wait(s->rec->go, 0);
    // (Already failed: the parent refused a channel it holds; see refuse.)
    if (s->rec->state != ChildRecord::kFailed) {
        channels::count_ends_in(s->rec->tally, s->rec->tally_size);
        s->spec->child(s->spec->arg, s->rec);
    }
    runtime::exit_os_process(0);
}

// cannot_cross: a channel the child holds whose values cannot cross OS
// processes, or null. Ends handed as arguments are checked when the program
// compiles; one captured by the callable or held inside an argument is only
// found here, among the channels the parent forgot.
channels::ChannelCore* cannot_cross(const std::vector<channels::ChannelCore*>& held) noexcept {
    for (channels::ChannelCore* c : held) {
        if (!c->ops->pack) return c;
    }
    return nullptr;
}

// shared_by_ranks: a channel the child holds that MPI ranks share (see
// channels/remote.hpp), or null. The child cannot reach MPI (only its
// parent's communication thread can), so it may not have one.
channels::ChannelCore* shared_by_ranks(const std::vector<channels::ChannelCore*>& held) noexcept {
    for (channels::ChannelCore* c : held) {
        if (c->shared_id != 0) return c;
    }
    return nullptr;
}

// refuse: the child must not run (it would only meet poison where it
// expects values, or MPI it cannot reach): its failure is a UsageError
// saying which channel and why, and the channels it holds are poisoned so
// its partners stop too.
void refuse(ForkState* s, channels::ChannelCore* bad, bool shared, const channels::BarrierCore* barrier = nullptr) noexcept {
    try {
        s->rec->error_type = pack_string("csp::UsageError");
        s->rec->error_message = pack_string(
            barrier ? "barrier '" + std::string(barrier->name) + "' is shared by MPI ranks, and OS process '" +
                          *s->spec->name +
                          "' was handed an end of it: a csp::multiprocess child cannot reach the other ranks, so "
                          "only the processes of a rank's own OS process (fibers and threads) can use such a "
                          "barrier, so far"
            : shared ? "channel '" + std::string(bad->name) + "' is shared by MPI ranks, and OS process '" +
                         *s->spec->name +
                         "' was handed an end of it: a csp::multiprocess child cannot reach the other ranks, so "
                         "only the processes of a rank's own OS process (fibers and threads) can use such a "
                         "channel, so far"
                   : "channel '" + std::string(bad->name) + "' carries values of type " +
                         demangle(bad->ops->type_name) + ", which cannot cross OS processes, and OS process '" +
                         *s->spec->name +
                         "' was handed an end of it (captured, or inside an argument): make the type trivially "
                         "copyable or give it a cereal serialize function (see csp/serialize.hpp)");
    } catch (...) {  // (no memory for the message: the type alone says it)
    }
    s->rec->state = ChildRecord::kFailed;
    for (channels::ChannelCore* c : s->held) channels::poison(c);
    for (channels::BarrierCore* b : s->barriers) channels::barrier_poison(b);
}

// tally_ends: the child's ends of each channel and barrier it holds (in
// that order), for it to count on (without a tally, if no memory is left,
// every one it holds is poisoned should the child die, as before).
void tally_ends(ForkState* s) noexcept {
    const std::size_t n = s->held.size() + s->barriers.size();
    if (n == 0) return;
    channels::EndTally* tally = nullptr;
    try {
        tally = static_cast<channels::EndTally*>(runtime::arena_allocate(n * sizeof(channels::EndTally)));
    } catch (const std::bad_alloc&) {
        return;
    }
    const Forgotten& f = s->forgotten;
    std::size_t i = 0;
    for (channels::ChannelCore* c : s->held) {
        ::new (&tally[i++]) channels::EndTally{c, {std::count(f.ends.begin(), f.ends.end(), c)}};
    }
    for (channels::BarrierCore* b : s->barriers) {
        ::new (&tally[i++]) channels::EndTally{b, {std::count(f.barrier_ends.begin(), f.barrier_ends.end(), b)}};
    }
    s->rec->tally = tally;
    s->rec->tally_size = n;
}

// still_held: the child, dead, still had ends of entry i of the tally (or
// kept no tally).
bool still_held(const ChildRecord* rec, std::size_t i) noexcept {
    return !rec->tally || rec->tally[i].ends.load(std::memory_order_relaxed) > 0;
}

// distinct: the cores named in `ends` or `handles`, each once.
template <class T>
std::vector<T*> distinct(const std::vector<T*>& ends, const std::vector<T*>& handles) {
    std::vector<T*> v = ends;
    v.insert(v.end(), handles.begin(), handles.end());
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
}

void parent_side(void* arg, int pid) noexcept {
    auto* s = static_cast<ForkState*>(arg);
    s->pid = pid;
    if (pid < 0) return;  // no child: the call stays the parent's
    {
        t_forgetting = &s->forgotten;
        s->spec->forget(s->spec->arg);
        t_forgetting = nullptr;
    }
    s->held = distinct(s->forgotten.ends, s->forgotten.handles);
    s->barriers = distinct(s->forgotten.barrier_ends, s->forgotten.barrier_handles);
    tally_ends(s);
    // The parent's own references, until the child is reaped.
    for (channels::ChannelCore* c : s->held) channels::acquire(c);
    for (channels::BarrierCore* b : s->barriers) channels::barrier_acquire(b);
    if (channels::ChannelCore* bad = cannot_cross(s->held)) {
        refuse(s, bad, false);
    } else if (channels::ChannelCore* shared = shared_by_ranks(s->held)) {
        refuse(s, shared, true);
    } else if (auto it = std::find_if(s->barriers.begin(), s->barriers.end(),
                                      [](const channels::BarrierCore* b) { return b->shared_id != 0; });
               it != s->barriers.end()) {
        refuse(s, nullptr, true, *it);
    } else {
        for (channels::ChannelCore* c : s->held) channels::mark_cross(c);
        for (channels::BarrierCore* b : s->barriers) channels::barrier_mark_cross(b);
    }
    s->rec->go.store(1, std::memory_order_release);
    runtime::futex_wake(s->rec->go, 1);
}

// ended_side: the child has ended, not yet reaped. A lock it died holding,
// of a channel it held, is taken over and the channel repaired (poisoned,
// with the waiter it was completing finished), so that nobody waits for
// that lock for ever. Only those channels: every other one it could lock is
// one it made, shared only with its own children, which die with it.
void ended_side(void* arg, int pid, int) noexcept {
    auto* s = static_cast<ForkState*>(arg);
    for (channels::ChannelCore* c : s->held) c->lock.take_from_dead(static_cast<std::uint32_t>(pid));
    for (channels::BarrierCore* b : s->barriers) b->lock.take_from_dead(static_cast<std::uint32_t>(pid));
}

void before_side(void* arg) noexcept {
    const ForkSpec* spec = static_cast<ForkState*>(arg)->spec;
    spec->before_fork(spec->arg);
}
void after_side(void* arg) noexcept {
    const ForkSpec* spec = static_cast<ForkState*>(arg)->spec;
    spec->after_fork(spec->arg);
}

}  // namespace

ChildRecord* run_forked(const ForkSpec& spec) {
    ForkState s{&spec, runtime::arena_new<ChildRecord>(), {}, {}, {}, 0};
    const int status = runtime::run_os_process({&child_side, &parent_side, &ended_side, &s,
                                                spec.before_fork ? &before_side : nullptr,
                                                spec.after_fork ? &after_side : nullptr});
    if (s.pid < 0) {
        free_record(s.rec);
        throw std::system_error(-s.pid, std::generic_category(),
                                "csp::multiprocess: cannot fork OS process '" + *spec.name + "'");
    }
    const bool died = status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
                      s.rec->state == ChildRecord::kNothing;
    if (died) {
        // Its partners must not wait for it for ever: the channels it still
        // had ends of are poisoned (it may have died in the middle of using
        // them); one it had retired from is left alone.
        for (std::size_t i = 0; i < s.held.size(); ++i) {
            if (still_held(s.rec, i)) channels::poison(s.held[i]);
        }
        for (std::size_t i = 0; i < s.barriers.size(); ++i) {
            if (still_held(s.rec, s.held.size() + i)) channels::barrier_poison(s.barriers[i]);
        }
    }
    for (channels::ChannelCore* c : s.held) channels::release(c);
    for (channels::BarrierCore* b : s.barriers) channels::barrier_release(b);
    if (died) {
        free_record(s.rec);
        const int sig = status != -1 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        runtime::logger().debug("OS process '{}' (pid {}) died: status {}", *spec.name, s.pid, status);
        throw OSProcessError(s.pid, sig, sig ? -1 : code);
    }
    if (s.rec->state == ChildRecord::kFailed) {
        RemoteError e(unpack_string(s.rec->error_type), unpack_string(s.rec->error_message));
        free_record(s.rec);
        throw e;
    }
    return s.rec;
}

}  // namespace csp::detail
