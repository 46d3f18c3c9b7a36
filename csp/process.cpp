// process.cpp: the non-template parts of processes: derived names,
// failures of processes, and spawned processes' joins.
#include "csp/process.hpp"

#include "runtime/log.hpp"
#include "runtime/trace.hpp"

#include <string_view>

namespace csp::detail {

// (Here, where every program that runs processes links: network.cpp's
// explanation of a deadlock, and CSP_GRAPH, are given to the runtime at
// load.)
void explain_deadlocks() noexcept;
namespace {
const bool g_deadlocks_explained = (explain_deadlocks(), true);
}

std::string derived_name(const char* kind, const std::source_location& where) {
    std::string_view file = where.file_name();
    if (auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
    return std::string(kind) + "@" + std::string(file) + ":" + std::to_string(where.line());
}

void rethrow_failure(const std::string& name, std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const RemoteError& x) {  // from an OS process: name the original's type too
        throw ProcessError(name, e, x.type_name() + ": " + x.what());
    } catch (const std::exception& x) {
        throw ProcessError(name, e, x.what());
    } catch (...) {
        throw ProcessError(name, e, "an exception not derived from std::exception");
    }
}

void trace_failure(std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        runtime::trace_exception(x.what());
    } catch (...) {
        runtime::trace_exception("a non-standard exception");
    }
}

void log_spawned_failure(const char* name, std::exception_ptr e) noexcept {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        runtime::logger().error("spawned process '{}' failed: {}", name, x.what());
    } catch (...) {
        runtime::logger().error("spawned process '{}' failed with a non-standard exception", name);
    }
}

// A fiber process keeps the Join of the processes it spawned in its
// ProcessArea, as a heap-held JoinRef.
void start_spawned(std::vector<std::unique_ptr<runtime::ProcessBody>>& bodies) {
    if (runtime::in_fiber()) {
        JoinRef*& join = area_of(runtime::current()).spawned;
        if (!join) join = new JoinRef(std::make_shared<runtime::Join>(0));
        const auto n = static_cast<std::int64_t>(bodies.size());
        (*join)->add(n);
        for (auto& b : bodies) static_cast<BodyBase*>(b.get())->join_at(*join);
        try {
            runtime::start_processes(bodies);
        } catch (...) {
            (*join)->add(-n);  // none of them started
            throw;
        }
        return;
    }
    // In a thread, the runtime joins every process still running at exit.
    runtime::start_processes(bodies);
}

void join_spawned() noexcept {
    JoinRef*& join = area_of(runtime::current()).spawned;
    if (join) {
        (*join)->wait();
        delete join;
        join = nullptr;
    }
}

}  // namespace csp::detail
