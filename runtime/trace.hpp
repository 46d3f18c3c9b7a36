// trace.hpp: the event trace (CSP_TRACE=path).
//
// When CSP_TRACE names a file, the runtime records what the network does and
// writes it at exit as Chrome trace event JSON (open it in Perfetto or
// chrome://tracing): a track per process, named after it, inside a group per
// OS process; on it a slice for the process's life and one for each interval
// it is blocked, saying on what; a flow arrow from writer to reader for each
// value that goes through a channel; a counter of each buffer's occupancy;
// instants for retire, poison, barrier syncs and exceptions. A child OS
// process writes its events beside the file, and its parent puts them in.
// When CSP_TRACE is unset the cost is one predictable branch.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace csp::runtime {

struct Parker;
struct WaitReason;

namespace trace_detail {
// observed: kTracing | kSimulating, as they are on (one load for the fast
// paths, which step aside for both: see channels::rendezvous_here).
enum : std::uint8_t { kTracing = 1, kSimulating = 2 };
extern std::atomic<std::uint8_t> observed;
void observe(std::uint8_t what, bool on) noexcept;
}  // namespace trace_detail

// tracing tells whether events are being recorded.
inline bool tracing() noexcept {
    return (trace_detail::observed.load(std::memory_order_relaxed) & trace_detail::kTracing) != 0;
}
// observed: tracing, or simulating (runtime.hpp): the fast paths of
// channels step aside (into paths that record events and take decisions).
inline bool observed() noexcept { return trace_detail::observed.load(std::memory_order_relaxed) != 0; }

// trace_process_start / trace_process_end: a process's track begins / ends.
void trace_process_start(Parker* p, const char* name) noexcept;
void trace_process_end(const Parker* p) noexcept;

// trace_block_begin / trace_block_end: p (the caller) is about to park for
// `why` / has woken: a slice named after what it waited on. begin returns
// whether it began one (not for a thread while a simulation runs: threads
// are outside it, and when such a wait ends depends on the machine), and
// end is called only then.
bool trace_block_begin(const Parker* p, const WaitReason* why) noexcept;
void trace_block_end(const Parker* p) noexcept;

// trace_event: an instant event on the calling process's track, e.g.
// ("write", "jobs"), ("poison", "jobs"); trace_exception: one for the
// exception the calling process ends by, with its message.
void trace_event(const char* what, const char* object) noexcept;
void trace_exception(const char* message) noexcept;

// Flows, one per value that goes through a channel: it starts on its
// writer's track and ends on its reader's (how = "read"), or where it was
// dropped ("discarded" by poison, "overwritten" by a newer value). `id`:
// the channel's number (trace_channel_number) in the high 32 bits, the
// value's place in the channel's order in the low. Either parker may be of
// another OS process of the network, or null (a thread that is not a
// process: its OS process's track 0).
void trace_flow_start(const Parker* writer, const char* channel, std::uint64_t id) noexcept;
void trace_flow_end(const Parker* reader, const char* channel, std::uint64_t id, const char* how) noexcept;
// trace_channel_number: a number for a new channel, unique in the network
// (its OS processes share the counter).
std::uint32_t trace_channel_number() noexcept;
// trace_counter: the value of counter `name` (e.g. "buffer 'jobs'") is now n.
void trace_counter(const char* name, std::int64_t n) noexcept;

// The OS processes of the network. trace_os_process_name names this one's
// group (its program's name otherwise). A child, after the fork, starts a
// trace of its own (trace_after_fork_in_child) and writes it when it ends
// (trace_child_exit) to a file beside CSP_TRACE's, which its parent takes
// in when it has reaped it (trace_child_reaped) and writes with its own.
void trace_os_process_name(std::string_view name) noexcept;
void trace_child_reaped(int pid) noexcept;
void trace_after_fork_in_child() noexcept;
void trace_child_exit() noexcept;

// MPI ranks (libcsp-mpi): each rank's events go to rank 0, which writes them
// with its own. trace_start_ns: when this trace began (steady clock, ns since
// its epoch). trace_align, as the ranks start: this trace's times count from
// `start_ns` instead (rank 0's start, on this rank's clock), and `id_salt`
// and `pid_salt` are added to flow ids and pids as they are written (so that
// no rank's collide with another's); children forked later inherit all
// three. trace_hand_over: this OS process's events so far (with its
// children's), as a part for another trace to take in (trace_take_in); this
// OS process then stops tracing. "" when it was not tracing.
std::int64_t trace_start_ns() noexcept;
void trace_align(std::int64_t start_ns, std::uint64_t id_salt, std::int32_t pid_salt) noexcept;
std::string trace_hand_over();
void trace_take_in(const std::string& part) noexcept;

// For simulations (csp/sim.cpp): trace_mark, where the events of a run
// begin; trace_drop_since, those events dropped (a run that passed: the
// trace keeps the one that failed); trace_path, the file ("" when not
// tracing). While a simulation runs, times are virtual and a process's
// track is the order in which it was made, so that the same run gives the
// same events.
std::size_t trace_mark() noexcept;
void trace_drop_since(std::size_t mark) noexcept;
const char* trace_path() noexcept;
// Without CSP_TRACE, a simulation records the events of its runs all the
// same (trace_for_simulation: true when it turned tracing on, to be turned
// off by trace_after_simulation), so that a failing run's trace can be
// written (trace_write_to: the events so far into `path`, which are then
// dropped; false, logged, when the file cannot be written).
bool trace_for_simulation() noexcept;
void trace_after_simulation() noexcept;
bool trace_write_to(const std::string& path) noexcept;

}  // namespace csp::runtime
