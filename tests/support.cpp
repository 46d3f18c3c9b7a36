#include "support.hpp"

#include "runtime/runtime.hpp"


#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include <sys/wait.h>
#include <unistd.h>

namespace csp_test {

namespace {
RankPlacer g_rank_placer = nullptr;
int g_rank = 0, g_ranks = 1;
std::vector<int> child_pids();
// Children MPI made before the tests (Open MPI's singleton start forks an
// orted when run without mpirun): not the tests' to reap.
std::vector<int> g_mpi_children;
}  // namespace

void set_rank_placer(RankPlacer placer, int rank, int ranks) {
    g_rank_placer = placer;
    g_rank = rank;
    g_ranks = ranks;
    g_mpi_children = child_pids();
}
int this_rank() { return g_rank; }
int rank_count() { return g_ranks; }

Placement placement() {
    if (g_rank_placer) return Placement::ranks;
    static const Placement chosen = [] {
        const char* value = std::getenv("CSP_TEST_PLACEMENT");
        const std::string_view name = value != nullptr ? value : "";
        if (name == "threads") return Placement::threads;
        if (name == "guests") return Placement::guests;
        if (name == "os_processes") return Placement::os_processes;
        if (name == "mixed") return Placement::mixed;
        return Placement::fibers;
    }();
    return chosen;
}

const char* placement_name() {
    switch (placement()) {
        case Placement::threads: return "plain threads";
        case Placement::guests: return "guests of one thread";
        case Placement::os_processes: return "OS processes";
        case Placement::mixed: return "fibers and OS processes by turns";
        case Placement::ranks: return "MPI ranks by turns";
        default: return "fibers";
    }
}

bool in_one_os_process() {
    return placement() == Placement::fibers || placement() == Placement::threads || placement() == Placement::guests;
}

bool in_child(std::size_t i) {
    return placement() == Placement::os_processes || (placement() == Placement::mixed && i % 2 == 0);
}

namespace {

// The body is the process's argument, so the ends it captured are destroyed
// when the body ends (API.md), not when Parallel returns; in a child, the
// parent's copy is let go of at the fork (the child owns those ends now).
Seen run_body(Body body) { return body.run(); }

std::vector<Seen> run_as_processes(std::vector<Body> bodies) {
    const auto as_fiber = csp::process("body", &run_body);
    const auto as_child = csp::multiprocess("body", &run_body);
    std::vector<csp::Process<Seen>> processes;
    processes.reserve(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        if (placement() == Placement::ranks) {
            processes.push_back(g_rank_placer(i, as_fiber(std::move(bodies[i]))));
        } else {
            processes.push_back(in_child(i) ? as_child(std::move(bodies[i])) : as_fiber(std::move(bodies[i])));
        }
    }
    bodies.clear();
    return csp::Parallel(std::move(processes));
}

std::vector<Seen> run_on_threads(std::vector<Body> bodies) {
    std::vector<Seen> seen(bodies.size());
    std::vector<std::exception_ptr> failures(bodies.size());
    std::vector<std::thread> threads;
    threads.reserve(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        threads.emplace_back([&seen, &failures, i, body = std::move(bodies[i])]() mutable {
            try {
                seen[i] = body.run();
            } catch (...) {
                failures[i] = std::current_exception();
            }
            body.release();  // the captured ends leave now, as a process's do
        });
    }
    for (std::thread& thread : threads) thread.join();
    for (const std::exception_ptr& failure : failures)
        if (failure) std::rethrow_exception(failure);
    return seen;
}

// Every body a guest of the calling thread, which runs them as a fiber
// worker runs fibers: each until it waits, then whichever is readied.
std::vector<Seen> run_as_guests(std::vector<Body> bodies) {
    using csp::runtime::Guest;
    using csp::runtime::GuestHost;
    struct Job {
        Body body;
        Seen seen;
        std::exception_ptr failure;
    };
    std::vector<Job> jobs;
    jobs.reserve(bodies.size());
    for (Body& body : bodies) jobs.push_back(Job{std::move(body), {}, nullptr});
    bodies.clear();
    const auto run = [](void* arg) noexcept {
        auto* job = static_cast<Job*>(arg);
        try {
            job->seen = job->body.run();
        } catch (...) {
            job->failure = std::current_exception();
        }
        job->body.release();  // the captured ends leave now, as a process's do
    };
    GuestHost host;
    std::size_t left = jobs.size();
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        Guest* g = host.add("body " + std::to_string(i), &jobs[i]);
        if (host.enter(g, run, &jobs[i])) {
            host.remove(g);
            --left;
        }
    }
    while (left > 0) {
        Guest* g = host.take();
        if (!g) {
            host.wait();
            continue;
        }
        if (host.resume(g)) {
            host.remove(g);
            --left;
        }
    }
    for (const Job& job : jobs)
        if (job.failure) std::rethrow_exception(job.failure);
    std::vector<Seen> seen;
    for (Job& job : jobs) seen.push_back(std::move(job.seen));
    return seen;
}

}  // namespace

std::vector<Seen> run_network(std::vector<Body> bodies) {
    if (!in_one_os_process()) {
        for (const Body& body : bodies) {
            if (body.records_by_reference())
                throw std::logic_error("run_network: a body that records by reference cannot run in " +
                                       std::string(placement_name()) + " (a child's writes are lost)");
        }
    }
    if (placement() == Placement::threads) return run_on_threads(std::move(bodies));
    if (placement() == Placement::guests) return run_as_guests(std::move(bodies));
    return run_as_processes(std::move(bodies));
}

namespace {

// The OS processes this process has forked and not yet reaped (zombies
// included), from /proc.
std::vector<int> child_pids() {
    std::vector<int> pids;
    const int self = getpid();
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
            continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;  // it ended meanwhile
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        char state = 0;
        int ppid = 0;
        if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == self)
            pids.push_back(std::stoi(name));
    }
    return pids;
}

}  // namespace

std::string unreaped_children() {
    std::string left;
    for (int pid : child_pids()) {
        if (std::find(g_mpi_children.begin(), g_mpi_children.end(), pid) == g_mpi_children.end())
            left += std::to_string(pid) + " ";
    }
    if (!g_mpi_children.empty()) return left;  // (waitpid would see MPI's own child)
    errno = 0;
    const int reaped = waitpid(-1, nullptr, WNOHANG);
    if (reaped != -1 || errno != ECHILD) left += "(waitpid(-1, WNOHANG) found a child)";
    return left;
}

template <>
std::string make_value<std::string>(int id) {
    std::string s(1, 'v');
    s += std::to_string(id);
    s.append(static_cast<std::size_t>(id % 37), id % 3 == 0 ? '\0' : static_cast<char>('a' + id % 26));
    return s;
}

int id_of(const std::string& s) {
    if (s.size() < 2 || s[0] != 'v') return -1;
    int id = 0;
    std::size_t digits = 1;
    while (digits < s.size() && digits < 10 && s[digits] >= '0' && s[digits] <= '9')
        id = id * 10 + (s[digits++] - '0');
    if (digits == 1) return -1;
    return s == make_value<std::string>(id) ? id : -1;
}

std::string message_of(std::exception_ptr pointer) {
    if (!pointer) return "";
    try {
        std::rethrow_exception(pointer);
    } catch (const std::exception& error) {
        return error.what();
    } catch (...) {
        return "";
    }
}

}  // namespace csp_test
