// barrier.hpp: csp::Barrier and csp::BarrierEnd.
//
//   csp::Barrier phase{"phase"};
//   csp::BarrierEnd e = phase.end();  // enrolled while it lives; each copy enrols too
//   e.sync();                         // waits until every enrolled end has synced in this phase
//   e.resign();                       // leaves; a phase that waited only for this end completes
//   e.poison();                       // every waiting and later sync throws ChannelPoisonException
//
// A BarrierEnd follows the unwinding rule of channel ends: destroyed while
// its process unwinds from ChannelRetireException it resigns, from any other
// exception it poisons; destroyed otherwise it resigns. A wait at a barrier
// takes part in deadlock detection, and the report names the barrier.
//
//   csp::Alternation alt{csp::BarrierGuard(e, [] { step(); }), csp::InputGuard(stop)};
//
// csp::BarrierGuard is an alting barrier (JCSP's AltingBarrier): it fires
// only when every enrolled end of its barrier is syncing or offering it in a
// choice, and then in all of them together (channels/barrier.hpp has the
// oracle). Plain sync() and guards mix freely. Priority among several
// barrier guards of one choice cannot be honoured (as in JCSP): a phase
// that can end ends, whichever barrier it is.
//
// Ends and handles handed to a csp::multiprocess (as arguments, or captured
// by value) work from the child as from here; a child that dies with ends
// of a barrier poisons it. A barrier the child reaches otherwise (through a
// reference or a global) is poisoned at its first use there, with a
// ChannelEndError saying why.
//
// A barrier made in main after the csp::mpi::World (the SPMD part) is shared
// by the MPI ranks: its members may be placed on any rank (csp::on_rank,
// csp::spread) and a phase ends when every member of every rank has synced.
// BarrierGuards work on it too (the home reserves every rank's offers
// before a phase ends with them).
// A barrier made otherwise is its rank's own: on a rank that dropped ends
// (or a handle) of one for a process placed on another rank, its syncs and
// guards throw csp::UsageError while that process runs, rather than end
// phases without the members there.
#pragma once

#include "channels/barrier.hpp"
#include "csp/detail/choice.hpp"
#include "csp/detail/ends.hpp"
#include "csp/detail/unwinding.hpp"
#include "csp/errors.hpp"

#include <functional>

#include <source_location>
#include <string>
#include <string_view>
#include <utility>

namespace csp {

namespace detail {
std::string derived_name(const char* kind, const std::source_location& where);
[[noreturn]] void throw_barrier_outcome(channels::Outcome o, const channels::BarrierCore* b);
[[noreturn]] void throw_empty_end(const char* what);
[[noreturn]] void throw_barrier_misused(channels::BarrierCore* b);
[[noreturn]] void throw_barrier_across_ranks(const channels::BarrierCore* b);
}  // namespace detail

class Barrier;

// BarrierEnd: one enrolled member of a barrier.
class BarrierEnd : public detail::EndTag {
public:
    BarrierEnd() noexcept = default;
    BarrierEnd(const BarrierEnd& other) noexcept : core_(other.core_) { join(); }
    BarrierEnd(BarrierEnd&& other) noexcept
        : core_(std::exchange(other.core_, nullptr)), resigned_(other.resigned_), epoch_(other.epoch_) {}
    BarrierEnd& operator=(BarrierEnd other) noexcept {
        std::swap(core_, other.core_);
        std::swap(resigned_, other.resigned_);
        std::swap(epoch_, other.epoch_);
        return *this;
    }
    ~BarrierEnd() { leave(); }

    // sync: waits until every enrolled end has synced in this phase.
    void sync() {
        check();
        const channels::Outcome o = channels::barrier_sync(core_, epoch_);
        if (o != channels::Outcome::Done) detail::throw_barrier_outcome(o, core_);
    }
    void operator()() { sync(); }

    // resign: this end leaves the barrier (it cannot sync again).
    void resign() noexcept {
        if (core_ && !resigned_) {
            resigned_ = true;
            channels::barrier_resign(core_, epoch_);
            channels::count_end(core_, -1);
            detail::forget_held_barrier(core_);
        }
    }

    // poison: every waiting and later sync of every end throws.
    void poison() noexcept {
        if (core_) channels::barrier_poison(core_);
    }

    explicit operator bool() const noexcept { return core_ != nullptr; }
    const char* name() const noexcept { return core_ ? core_->name : ""; }
    // held_barrier: the barrier this end is enrolled on, or null (moved
    // from, or resigned): what deadlock explanations count it as.
    const channels::BarrierCore* held_barrier() const noexcept { return resigned_ ? nullptr : core_; }

private:
    friend class Barrier;
    friend class BarrierGuard;
    explicit BarrierEnd(channels::BarrierCore* b) noexcept : core_(b) { join(); }

    void join() noexcept {
        if (!core_) return;
        channels::barrier_acquire(core_);
        channels::count_end(core_, +1);
        epoch_ = channels::barrier_enrol(core_);
    }
    void leave() noexcept {
        if (!core_) return;
        if (detail::t_forgetting) [[unlikely]] {
            // A multiprocess's parent drops its copy: the child's owns it now.
            if (!resigned_) channels::count_end(core_, -1);  // (in a child: handed on to a grandchild)
            (resigned_ ? detail::t_forgetting->barrier_handles : detail::t_forgetting->barrier_ends)
                .push_back(std::exchange(core_, nullptr));
            return;
        }
        if (detail::t_placed_elsewhere && !resigned_) [[unlikely]] detail::placed_elsewhere(core_);
        if (!resigned_) {
            if (std::uncaught_exceptions() > 0 && !detail::unwinding_from_retire()) channels::barrier_poison(core_);
            channels::barrier_resign(core_, epoch_);
            channels::count_end(core_, -1);
        }
        channels::barrier_release(std::exchange(core_, nullptr));
    }
    void check() const {
        if (!core_) detail::throw_empty_end("csp::BarrierEnd (from Barrier::end())");
        if (resigned_) throw UsageError(std::string("csp: an end of barrier '") + core_->name + "' was used after it resigned");
        if (channels::barrier_foreign(core_)) [[unlikely]] detail::throw_barrier_misused(core_);
        if (core_->elsewhere.load(std::memory_order_relaxed) > 0) [[unlikely]] detail::throw_barrier_across_ranks(core_);
    }

    channels::BarrierCore* core_ = nullptr;
    bool resigned_ = false;
    std::uint64_t epoch_ = 0;  // (a barrier shared by MPI ranks: see channels::barrier_enrol)
};

// BarrierGuard: a guard that fires when the barrier's phase ends with this
// end taking part (every other enrolled end syncing or offering it too).
// It keeps a reference to the end (or owns it, when given a temporary).
class BarrierGuard : public detail::GuardBase<BarrierGuard> {
public:
    using value_type = std::monostate;

    explicit BarrierGuard(BarrierEnd& end) : end_(&end) {}
    explicit BarrierGuard(BarrierEnd&& end) : owned_(std::move(end)), end_(nullptr) {}
    template <class F>
    BarrierGuard(BarrierEnd& end, F&& action) : end_(&end), action_(detail::nullary_action(std::forward<F>(action))) {}
    template <class F>
    BarrierGuard(BarrierEnd&& end, F&& action)
        : owned_(std::move(end)), end_(nullptr), action_(detail::nullary_action(std::forward<F>(action))) {}

private:
    friend struct detail::GuardAccess;

    BarrierEnd& end() noexcept { return end_ ? *end_ : owned_; }
    channels::Guard record() {
        channels::Guard g{channels::Guard::Kind::Barrier, this->enabled(), nullptr, nullptr, {}};
        if (!g.enabled) return g;
        end().check();
        g.slot = end().core_;
        g.epoch = end().epoch_;
        return g;
    }
    void fired() {
        if (action_) action_();
    }

    BarrierEnd owned_;
    BarrierEnd* end_;
    std::function<void()> action_;
};

// Barrier: a cheap copyable handle on one barrier; its ends enrol.
class Barrier {
public:
    explicit Barrier(std::source_location where = std::source_location::current())
        : Barrier(std::string_view(detail::derived_name("barrier", where))) {}
    explicit Barrier(const char* name) : Barrier(std::string_view(name)) {}
    explicit Barrier(const std::string& name) : Barrier(std::string_view(name)) {}
    explicit Barrier(std::string_view name) : core_(channels::barrier_create(name)) {}
    Barrier(const Barrier& other) noexcept : core_(other.core_) { channels::barrier_acquire(core_); }
    Barrier& operator=(const Barrier& other) noexcept {
        channels::barrier_acquire(other.core_);
        channels::barrier_release(core_);
        core_ = other.core_;
        return *this;
    }
    ~Barrier() {
        if (detail::t_forgetting) [[unlikely]] {
            detail::t_forgetting->barrier_handles.push_back(core_);  // (see BarrierEnd::leave)
            return;
        }
        if (detail::t_placed_elsewhere) [[unlikely]] detail::placed_elsewhere(core_);  // (it may make ends there)
        channels::barrier_release(core_);
    }

    // end: a new enrolled end.
    BarrierEnd end() const noexcept { return BarrierEnd(core_); }
    void poison() noexcept { channels::barrier_poison(core_); }
    const char* name() const noexcept { return core_->name; }

private:
    channels::BarrierCore* core_;
};

}  // namespace csp
