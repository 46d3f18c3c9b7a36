// deadlock.cpp: deadlocks across ranks. A rank alone cannot tell one: its
// processes wait for other ranks (Rank waits), whose processes may be about
// to answer. So every rank's detector, finding every process of its own
// blocked with at least one waiting for another rank, reports the rank quiet
// to rank 0 (the runtime's rank-quiet hook), and rank 0 asks them all.
//
// Rank 0 runs waves: a Probe to every rank, each answering with its State:
// still quiet or not (its runtime's walk, and nothing left in its
// communication thread), its counts of messages sent and received (control
// messages not counted), and its report lines. Two waves in a row in which
// every rank is quiet, the counts are the same in both, and everything sent
// has been received: then no rank can ever wake, since only a message can
// wake a quiet rank and none is on its way (the four-counter method of
// Mattern's termination detection). Rank 0 then sends the report to every
// rank, and each ends its Blocked and Rank waits with it: every rank's
// Parallel throws a DeadlockError naming the processes of every rank.
#include "mpi/comm.hpp"

#include "runtime/log.hpp"

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace csp::mpi::detail {
namespace {

struct RankState {
    bool quiet = false;
    std::uint64_t sent = 0, received = 0;
    std::string lines;
};

// Rank 0's side (on its communication thread only).
struct Coordinator {
    std::vector<RankState> reported;  // the latest Quiet or State of each rank
    std::uint64_t wave = 0;           // the wave asked, 0: none under way
    int answers = 0;
    std::vector<RankState> answered;  // this wave's States
    std::vector<RankState> previous;  // the last wave's, if every rank was quiet and balanced
};
Coordinator g_coordinator;

// What this rank last reported, so that a rank that stays quiet reports once.
std::mutex g_report_lock;
std::uint64_t g_reported_sent = ~std::uint64_t{0}, g_reported_received = ~std::uint64_t{0};
// g_said: whether g_reported_sent holds a report (written under
// g_report_lock; read without it by after_messages, which every round of
// the turn's holder that received something calls: a look, not a lock).
std::atomic<bool> g_said{false};
// A Probe found this rank not quiet (its communication thread busy, say):
// nothing else may make it look again, so that thread does once it is idle
// (quiet_again). (Whoever holds the turn's: mpi/comm.cpp.)
bool g_look_when_idle = false;

void post_state(Kind kind, std::uint64_t wave, bool quiet, const std::string& lines) {
    Header h{kind};
    h.chan = wave;
    h.a = quiet ? 1 : 0;
    // sent and received follow the lines: the header has room for one.
    std::string payload(2 * sizeof(std::uint64_t), '\0');
    const std::uint64_t counts[2] = {g_comm->sent(), g_comm->received()};
    std::memcpy(payload.data(), counts, sizeof counts);
    payload += lines;
    g_comm->post(0, h, payload.data(), payload.size());
}

RankState state_of(const Message& m) {
    RankState s;
    s.quiet = m.header().a != 0;
    std::uint64_t counts[2] = {0, 0};
    if (m.payload_size() >= sizeof counts) std::memcpy(counts, m.payload(), sizeof counts);
    s.sent = counts[0];
    s.received = counts[1];
    if (m.payload_size() > sizeof counts) s.lines.assign(m.payload() + sizeof counts, m.payload_size() - sizeof counts);
    return s;
}

// This rank looked quiet: say so to rank 0, with the counts (the lines go
// with the States a wave asks for, read where nothing can wake meanwhile).
void rank_quiet() {
    if (!g_comm) return;
    {
        std::lock_guard<std::mutex> hold(g_report_lock);
        if (g_comm->sent() == g_reported_sent && g_comm->received() == g_reported_received) return;
        g_reported_sent = g_comm->sent();
        g_reported_received = g_comm->received();
        g_said.store(true, std::memory_order_release);
    }
    runtime::logger().debug("rank {}: quiet (sent {}, received {})", g_comm->rank, g_comm->sent(), g_comm->received());
    post_state(Kind::Quiet, 0, true, std::string());
}

bool all_quiet(const std::vector<RankState>& states) {
    for (const RankState& s : states) {
        if (!s.quiet) return false;
    }
    return true;
}

bool all_quiet_and_balanced(const std::vector<RankState>& states) {
    std::uint64_t sent = 0, received = 0;
    for (const RankState& s : states) {
        if (!s.quiet) return false;
        sent += s.sent;
        received += s.received;
    }
    return sent == received;
}

void start_wave(Coordinator& k) {
    ++k.wave;
    k.answers = 0;
    k.answered.assign(static_cast<std::size_t>(g_comm->size), RankState{});
    Header h{Kind::Probe};
    h.chan = k.wave;
    for (int r = 0; r < g_comm->size; ++r) g_comm->post(r, h);
}

void declare(const std::vector<RankState>& states) {
    std::string report = "deadlock across " + std::to_string(states.size()) +
                         " ranks: every process of every rank is blocked and nothing can wake any of them:";
    for (std::size_t r = 0; r < states.size(); ++r) {
        std::string lines = states[r].lines;
        for (std::size_t at = 0; (at = lines.find("\n  process", at)) != std::string::npos; at += 2) {
            lines.insert(at + 3, "(rank " + std::to_string(r) + ") ");
        }
        report += lines;
    }
    for (int r = 0; r < g_comm->size; ++r) g_comm->post(r, Header{Kind::Deadlock}, report.data(), report.size());
}

void coordinate(const Message& m) {
    Coordinator& k = g_coordinator;
    if (k.reported.empty()) k.reported.resize(static_cast<std::size_t>(g_comm->size));
    const Header& h = m.header();
    if (h.kind == Kind::Quiet) {
        k.reported[static_cast<std::size_t>(m.peer)] = state_of(m);
        // (Balanced or not: a rank's report may be older than messages it
        // has handled since without waking anybody; the wave reads afresh.)
        if (k.wave == 0 && all_quiet(k.reported)) start_wave(k);
        return;
    }
    // A State of the wave under way.
    if (h.chan != k.wave) return;  // (an old wave's)
    k.answered[static_cast<std::size_t>(m.peer)] = state_of(m);
    k.reported[static_cast<std::size_t>(m.peer)] = k.answered[static_cast<std::size_t>(m.peer)];
    if (++k.answers < g_comm->size) return;
    const std::vector<RankState> states = std::move(k.answered);
    if (!all_quiet_and_balanced(states)) {
        k.previous.clear();
        k.wave = 0;  // (a rank that gets quiet again reports it, and the waves start over)
        // (A rank may have reported itself quiet again while this wave was
        // under way, after its State: then that report starts the next.)
        if (all_quiet(k.reported)) start_wave(k);
        return;
    }
    bool same = k.previous.size() == states.size();
    for (std::size_t r = 0; same && r < states.size(); ++r) {
        same = states[r].sent == k.previous[r].sent && states[r].received == k.previous[r].received;
    }
    if (!same) {
        k.previous = states;
        start_wave(k);  // once more: nothing may have moved in between
        return;
    }
    k.previous.clear();
    k.wave = 0;
    declare(states);
}

}  // namespace

// (The runtime's hook, on the worker that found the rank quiet.)
void start_detector() noexcept { runtime::set_rank_quiet_hook(&rank_quiet); }

void after_messages() {
    // This rank said it was quiet, and has handled messages since: if they
    // woke nobody it still is, and says so with its new counts (the
    // runtime's walk would not run again: nothing woke).
    if (!g_said.load(std::memory_order_acquire)) return;
    bool said;
    {
        std::lock_guard<std::mutex> hold(g_report_lock);
        said = g_reported_sent != ~std::uint64_t{0};
    }
    if (!said) return;
    if (runtime::rank_quiet_now(nullptr) && g_comm->idle()) {
        rank_quiet();
    } else {
        // Awake again: no more walks here until its runtime finds it quiet.
        std::lock_guard<std::mutex> hold(g_report_lock);
        g_reported_sent = g_reported_received = ~std::uint64_t{0};
        g_said.store(false, std::memory_order_release);
    }
}

void quiet_again() {
    if (!g_look_when_idle) return;
    if (!runtime::rank_quiet_now(nullptr) || !g_comm->idle()) return;  // (processes run: they look)
    g_look_when_idle = false;
    rank_quiet();
}

void stopping_rank() {
    {
        std::lock_guard<std::mutex> hold(g_report_lock);
        g_reported_sent = g_reported_received = ~std::uint64_t{0};
        g_said.store(false, std::memory_order_release);
    }
    post_state(Kind::Quiet, 0, true, "");
}

void on_detector_message(Message& m) {
    switch (m.header().kind) {
        case Kind::Quiet:
        case Kind::State:
            if (g_comm->rank == 0) coordinate(m);
            return;
        case Kind::Probe: {
            std::string lines;
            // (A rank whose main is done has no process left to run: only
            // its communication thread, which answers the others.)
            const bool quiet = (g_comm->main_done() || runtime::rank_quiet_now(&lines)) && g_comm->idle();
            runtime::logger().debug("rank {}: probe {}: quiet {}", g_comm->rank, m.header().chan, quiet);
            if (!quiet) {
                // (It reports again when it is quiet, even with the same counts.)
                std::lock_guard<std::mutex> hold(g_report_lock);
                g_reported_sent = g_reported_received = ~std::uint64_t{0};
                g_said.store(false, std::memory_order_release);
                g_look_when_idle = true;
            }
            post_state(Kind::State, m.header().chan, quiet, lines);
            return;
        }
        case Kind::Deadlock: {
            {
                std::lock_guard<std::mutex> hold(g_report_lock);
                g_reported_sent = g_reported_received = ~std::uint64_t{0};
                g_said.store(false, std::memory_order_release);
            }
            // (First the requests of the processes this deadlock ends, here
            // and on other ranks, are taken back: none may take a value.)
            deadlock_broken(g_comm->note_deadlock());
            runtime::break_rank_deadlock(std::string(m.payload(), m.payload_size()));
            return;
        }
        default:
            return;
    }
}

}  // namespace csp::mpi::detail
