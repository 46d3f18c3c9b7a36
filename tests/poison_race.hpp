// poison_race.hpp: PyCSP's termination race, for the simulation's bug
// corpus (tests/sim.cpp, and tests/mpi.cpp with the two placed on ranks). A
// producer writes 5 values into a buffered channel and poisons it; poison
// ends the channel at once, so values still buffered are lost when the
// consumer has not read them yet: the consumer then fails with "poison lost
// values: N of 5 read".
#pragma once

#include <csp/csp.hpp>

#include <stdexcept>
#include <string>

inline auto early_poisoner() {
    return csp::process("producer", [](csp::ChannelOut<int> out) {
        for (int i = 0; i < 5; ++i) out(i);
        out.poison();
    });
}

inline auto poisoned_consumer() {
    return csp::process("consumer", [](csp::ChannelIn<int> in) {
        int got = 0;
        try {
            for (;;) {
                in();
                ++got;
            }
        } catch (const csp::ChannelPoisonException&) {
        }
        if (got != 5) throw std::runtime_error("poison lost values: " + std::to_string(got) + " of 5 read");
        return got;
    });
}
