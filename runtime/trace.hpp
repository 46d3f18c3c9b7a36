// trace.hpp: the event trace (CSP_TRACE=path).
//
// When CSP_TRACE names a file, the runtime records process starts and ends,
// communications, poison and retire, and writes them at exit as Chrome trace
// event JSON (open it in Perfetto or chrome://tracing): one track per process,
// named after it. When CSP_TRACE is unset the cost is one predictable branch.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace csp::runtime {

struct Parker;

namespace trace_detail {
extern std::atomic<bool> enabled;
}

// tracing tells whether events are being recorded.
inline bool tracing() noexcept { return trace_detail::enabled.load(std::memory_order_relaxed); }

// trace_process_start / trace_process_end: a process's track begins / ends.
void trace_process_start(const Parker* p, const char* name) noexcept;
void trace_process_end(const Parker* p) noexcept;

// trace_event: an instant event on the calling process's track, e.g.
// ("write", "jobs"), ("poison", "jobs").
void trace_event(const char* what, const char* object) noexcept;

// For simulations (csp/sim.cpp): trace_mark, where the events of a run
// begin; trace_drop_since, those events dropped (a run that passed: the
// trace keeps the one that failed); trace_path, the file ("" when not
// tracing). While a simulation runs, times are virtual and a process's
// track is the order in which it was made, so that the same run gives the
// same events.
std::size_t trace_mark() noexcept;
void trace_drop_since(std::size_t mark) noexcept;
const char* trace_path() noexcept;

}  // namespace csp::runtime
