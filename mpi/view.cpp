// view.cpp: the network across ranks, for csp::write_graph (and so for
// CSP_GRAPH's graphs at SIGUSR1 and at exit). A rank that draws asks every
// other rank for its part (View); whoever holds that rank's turn answers
// with its OS process's part of that moment (Shown: runtime::part_now, the
// same text an OS process gives for a view across OS processes). The asker
// waits for the answers up to a limit and joins them with its own, every
// rank a cluster of the graph; channels shared by ranks are named in parts
// by their ids (csp/network.cpp, key), so one channel is one node.
//
// Both are control messages, like the deadlock detector's: not counted,
// sent until the rank's Farewell and dropped after it (Comm::post), so none
// is left unreceived at MPI_Finalize; an ask that comes too late goes
// unanswered, and the asker draws that rank as not answering. One view at
// a time from a rank; an answer to an older ask is dropped. Views are open
// only while the World's communication thread runs (open_views,
// close_views): a view under way when the World ends is waited for.
#include "mpi/comm.hpp"

#include "runtime/log.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace csp::mpi::detail {
namespace {

using Titled = std::pair<std::string, std::string>;

std::mutex g_viewing;  // one view at a time from this rank
bool g_open = false;   // (under g_viewing) the World's communication thread runs: open_views
std::atomic<int> g_keyed_rank{-1};
std::mutex g_lock;     // the answers to the current ask
std::uint64_t g_ask = 0;
std::vector<std::optional<Titled>> g_answers;  // by rank

// title: "rank 2, OS process 1234 on host-a".
std::string title(int rank) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return "rank " + std::to_string(rank) + ", OS process " + std::to_string(getpid()) +
           (host[0] ? std::string(" on ") + host : std::string());
}

}  // namespace

void open_views(int rank) {
    std::lock_guard<std::mutex> viewing(g_viewing);
    g_open = true;
    g_keyed_rank.store(rank, std::memory_order_relaxed);
}

void close_views() {
    std::lock_guard<std::mutex> viewing(g_viewing);
    g_open = false;
}

int keyed_rank() noexcept { return g_keyed_rank.load(std::memory_order_relaxed); }

// (On the communication thread, or a worker in its turn: the snapshot holds
// up this rank's messages while it is taken, as a view is rare. Nothing
// may escape: no memory is an answer with no part, or none.)
void on_view_message(Message& m) {
    const Header& h = m.header();
    try {
        if (h.kind == Kind::View) {
            std::string answer = title(g_comm->rank) + '\0';
            try {
                answer += runtime::part_now();
            } catch (...) {
            }
            Header back{Kind::Shown};
            back.req = h.req;
            g_comm->post(m.peer, back, answer.data(), answer.size());
            return;
        }
        std::lock_guard<std::mutex> hold(g_lock);
        if (h.req != g_ask || m.peer < 0 || static_cast<std::size_t>(m.peer) >= g_answers.size()) return;
        const std::string text(m.payload(), m.payload_size());
        const std::size_t nul = text.find('\0');
        if (nul == std::string::npos) {
            g_answers[static_cast<std::size_t>(m.peer)] = Titled{"rank " + std::to_string(m.peer), {}};
        } else {
            g_answers[static_cast<std::size_t>(m.peer)] = Titled{text.substr(0, nul), text.substr(nul + 1)};
        }
    } catch (...) {  // (the asker draws that rank as not answering)
    }
}

std::vector<Titled> view_ranks(std::vector<Titled> own, std::chrono::milliseconds wait) {
    // (g_comm stays while views are open: the World closes them, waiting
    // for this one, before it stops and deletes it.)
    std::lock_guard<std::mutex> viewing(g_viewing);
    Comm* comm = g_open ? g_comm : nullptr;
    if (!comm || comm->size < 2 || !comm->reachable() || comm->main_done()) return {};
    std::uint64_t ask;
    {
        std::lock_guard<std::mutex> hold(g_lock);
        ask = ++g_ask;
        g_answers.assign(static_cast<std::size_t>(comm->size), std::nullopt);
    }
    for (int r = 0; r < comm->size; ++r) {
        if (r == comm->rank) continue;
        Header h{Kind::View};
        h.req = ask;
        comm->post(r, h);
    }
    auto answered = [&] {
        std::lock_guard<std::mutex> hold(g_lock);
        for (int r = 0; r < comm->size; ++r) {
            if (r != comm->rank && !g_answers[static_cast<std::size_t>(r)]) return false;
        }
        return true;
    };
    const auto until = std::chrono::steady_clock::now() + wait;
    while (!answered() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // This rank's OS processes, titled with the rank: every one's (it has
    // children), or its own alone.
    const std::string here = "rank " + std::to_string(comm->rank) + ", ";
    if (own.empty()) {
        own.push_back({title(comm->rank), runtime::part_now()});
    } else {
        for (Titled& t : own) t.first = here + t.first;
    }
    std::vector<Titled> parts;
    std::lock_guard<std::mutex> hold(g_lock);
    for (int r = 0; r < comm->size; ++r) {
        if (r == comm->rank) {
            for (Titled& t : own) parts.push_back(std::move(t));
        } else if (auto& got = g_answers[static_cast<std::size_t>(r)]) {
            parts.push_back(std::move(*got));
        } else {
            parts.push_back({"rank " + std::to_string(r) + " (did not answer within " + std::to_string(wait.count()) +
                                 " ms)",
                             {}});
        }
    }
    g_answers.clear();
    ++g_ask;  // (an answer still on its way is dropped)
    return parts;
}

}  // namespace csp::mpi::detail
