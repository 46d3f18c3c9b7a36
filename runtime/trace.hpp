// trace.hpp: the event trace (CSP_TRACE=path).
//
// When CSP_TRACE names a file, the runtime records process starts and ends,
// communications, poison and retire, and writes them at exit as Chrome trace
// event JSON (open it in Perfetto or chrome://tracing): one track per process,
// named after it. When CSP_TRACE is unset the cost is one predictable branch.
#pragma once

#include <atomic>
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

}  // namespace csp::runtime
