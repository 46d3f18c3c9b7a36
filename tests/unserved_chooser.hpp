// unserved_chooser.hpp: a process for the tests of deadlocks among choices
// (tests/deadlock.cpp, tests/mpi.cpp). It waits in a FairSelect over x and
// y, which nobody writes before it has chosen: a deadlock, whose
// DeadlockError it catches. Then the `first` of a pair writes 7 to `out`,
// and the other reads it from `back` (through a choice again). Its result:
// 100 for the DeadlockError, plus what it read afterwards.
#pragma once

#include <csp/csp.hpp>

#include <string>
#include <variant>

inline auto unserved_chooser(const std::string& name) {
    return csp::process(name, [](csp::ChannelIn<int> x, csp::ChannelIn<int> y, csp::ChannelOut<int> out,
                                 csp::ChannelIn<int> back, bool first) {
        int deadlocks = 0;
        try {
            (void)csp::FairSelect(csp::InputGuard(x), csp::InputGuard(y));
        } catch (const csp::DeadlockError&) {
            ++deadlocks;
        }
        int got = 0;
        if (first) {
            out(7);
        } else {
            auto r = csp::PriSelect(csp::InputGuard(back), csp::InputGuard(x));
            got = r.index() == 0 ? std::get<0>(r) : -1;
        }
        return deadlocks * 100 + got;
    });
}
