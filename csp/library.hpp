// library.hpp: csp::lib, ready-made processes (JCSP's plugNplay, PyCSP's
// builtins), each a csp::Process<> made from channel ends, for any value
// type:
//
//   csp::Parallel(csp::lib::numbers(a.writer(), 0),            // 0, 1, 2, ...
//                 csp::lib::map([](int x) { return x * x; }, a.reader(), b.writer()),
//                 csp::lib::take(10, b.reader(), c.writer()),  // 10 values, then retires
//                 printer(c.reader()));
//
// Each runs until an end it uses is retired or poisoned, and then ends by
// the unwinding rule like a process written by hand: a retire it meets
// retires its other ends as they go, a poison poisons them. So a network of
// them shuts down from either end.
#pragma once

#include "csp/alternation.hpp"
#include "csp/channel.hpp"
#include "csp/process.hpp"

#include <chrono>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace csp::lib {

// identity: every value read from `in` is written to `out`.
template <class T>
Process<> identity(ChannelIn<T> in, ChannelOut<T> out) {
    return process("identity", [](ChannelIn<T> in, ChannelOut<T> out) {
        for (;;) out(in());
    })(std::move(in), std::move(out));
}

// prefix: writes `first`, then is identity (occam's and JCSP's Prefix).
template <class T>
Process<> prefix(std::type_identity_t<T> first, ChannelIn<T> in, ChannelOut<T> out) {
    return process("prefix", [](T first, ChannelIn<T> in, ChannelOut<T> out) {
        out(std::move(first));
        for (;;) out(in());
    })(std::move(first), std::move(in), std::move(out));
}

// successor: writes each value read plus one.
template <class T>
Process<> successor(ChannelIn<T> in, ChannelOut<T> out) {
    return process("successor", [](ChannelIn<T> in, ChannelOut<T> out) {
        for (;;) out(in() + 1);
    })(std::move(in), std::move(out));
}

// delta: each value read goes to every output, to all of them concurrently
// (whichever reader comes first is served first); the next value is read
// once every output has taken this one. An output that is retired is left
// out; the process ends when every output is.
template <class T>
Process<> delta(ChannelIn<T> in, std::vector<ChannelOut<T>> outs) {
    return process("delta", [](ChannelIn<T> in, std::vector<ChannelOut<T>> outs) {
        for (;;) {
            const T value = in();
            std::vector<OutputGuard<T>> guards;
            guards.reserve(outs.size());
            for (auto& out : outs) guards.emplace_back(out, value);
            for (std::size_t left = outs.size(); left > 0; --left) {
                std::size_t sent;
                try {
                    sent = FairSelect(guards).first;
                } catch (const ChannelRetireException&) {
                    break;  // every output still waiting for this value has retired
                }
                guards[sent].when(false);
            }
            // Outputs whose guard is still enabled have retired: left out.
            std::vector<bool> retired(outs.size());
            for (std::size_t i = 0; i < outs.size(); ++i) retired[i] = guards[i].enabled();
            guards.clear();  // (they refer to the ends moved below)
            std::size_t kept = 0;
            for (std::size_t i = 0; i < outs.size(); ++i) {
                if (!retired[i]) outs[kept++] = std::move(outs[i]);
            }
            outs.resize(kept);
            if (outs.empty()) throw ChannelRetireException("", "csp::lib::delta: every output has retired");
        }
    })(std::move(in), std::move(outs));
}

// seq_delta: each value read goes to every output, one after another in
// their order. An output that is retired is left out; the process ends when
// every output is.
template <class T>
Process<> seq_delta(ChannelIn<T> in, std::vector<ChannelOut<T>> outs) {
    return process("seq_delta", [](ChannelIn<T> in, std::vector<ChannelOut<T>> outs) {
        for (;;) {
            const T value = in();
            for (auto out = outs.begin(); out != outs.end();) {
                try {
                    (*out)(value);
                    ++out;
                } catch (const ChannelRetireException&) {
                    out = outs.erase(out);  // retired: left out
                }
            }
            if (outs.empty()) throw ChannelRetireException("", "csp::lib::seq_delta: every output has retired");
        }
    })(std::move(in), std::move(outs));
}

// merge: every value read from any input, chosen fairly, goes to `out`;
// ends when every input is retired.
template <class T>
Process<> merge(std::vector<ChannelIn<T>> ins, ChannelOut<T> out) {
    return process("merge", [](std::vector<ChannelIn<T>> ins, ChannelOut<T> out) {
        std::vector<InputGuard<T>> guards;
        guards.reserve(ins.size());
        for (auto& in : ins) guards.emplace_back(in);
        Alternation<std::vector<InputGuard<T>>> alt{std::move(guards)};
        for (;;) out(std::move(*alt.fair_select().second));
    })(std::move(ins), std::move(out));
}

// tail: drops the first value read, then is identity.
template <class T>
Process<> tail(ChannelIn<T> in, ChannelOut<T> out) {
    return process("tail", [](ChannelIn<T> in, ChannelOut<T> out) {
        (void)in();
        for (;;) out(in());
    })(std::move(in), std::move(out));
}

// take: passes the first n values, then ends (retiring its ends).
template <class T>
Process<> take(std::size_t n, ChannelIn<T> in, ChannelOut<T> out) {
    return process("take", [](std::size_t n, ChannelIn<T> in, ChannelOut<T> out) {
        for (std::size_t i = 0; i < n; ++i) out(in());
    })(n, std::move(in), std::move(out));
}

// black_hole: reads and drops every value.
template <class T>
Process<> black_hole(ChannelIn<T> in) {
    return process("black_hole", [](ChannelIn<T> in) {
        for (;;) (void)in();
    })(std::move(in));
}

// generate: writes `value` for ever.
template <class T>
Process<> generate(std::type_identity_t<T> value, ChannelOut<T> out) {
    return process("generate", [](T value, ChannelOut<T> out) {
        for (;;) out(value);
    })(std::move(value), std::move(out));
}

// numbers: writes from, from + 1, from + 2, ...
template <class T>
Process<> numbers(ChannelOut<T> out, std::type_identity_t<T> from = T{}) {
    return process("numbers", [](ChannelOut<T> out, T from) {
        for (T i = from;; ++i) out(i);
    })(std::move(out), std::move(from));
}

// map: writes f(v) for each value v read.
template <class F, class A, class B>
    requires std::is_convertible_v<std::invoke_result_t<F&, A&&>, B>
Process<> map(F f, ChannelIn<A> in, ChannelOut<B> out) {
    return process("map", [](F f, ChannelIn<A> in, ChannelOut<B> out) {
        for (;;) out(B(f(in())));
    })(std::move(f), std::move(in), std::move(out));
}

// filter: writes the values read for which pred is true.
template <class P, class T>
    requires std::is_invocable_r_v<bool, P&, const T&>
Process<> filter(P pred, ChannelIn<T> in, ChannelOut<T> out) {
    return process("filter", [](P pred, ChannelIn<T> in, ChannelOut<T> out) {
        for (;;) {
            T value = in();
            if (pred(std::as_const(value))) out(std::move(value));
        }
    })(std::move(pred), std::move(in), std::move(out));
}

// regulate: at most one value per period, the latest read in it (values
// read in between are dropped); nothing when none came. When `in` retires,
// a value still held is written before it ends.
template <class T, class Rep, class Period>
Process<> regulate(std::chrono::duration<Rep, Period> period, ChannelIn<T> in, ChannelOut<T> out) {
    const auto step = std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
    return process("regulate", [](std::chrono::steady_clock::duration step, ChannelIn<T> in, ChannelOut<T> out) {
        std::optional<T> latest;
        auto next = runtime::now() + step;
        try {
            for (;;) {
                const auto now = runtime::now();
                auto r = PriSelect(TimeoutGuard(now < next ? next - now : std::chrono::steady_clock::duration{}),
                                   InputGuard(in));
                if (r.index() == 1) {
                    latest.emplace(std::move(std::get<1>(r)));
                    continue;
                }
                next += step;
                if (latest) {
                    out(std::move(*latest));
                    latest.reset();
                }
            }
        } catch (const ChannelRetireException&) {
            if (latest) out(std::move(*latest));
            throw;
        }
    })(step, std::move(in), std::move(out));
}

// fixed_delay: writes each value read `delay` after it was read.
template <class T, class Rep, class Period>
Process<> fixed_delay(std::chrono::duration<Rep, Period> delay, ChannelIn<T> in, ChannelOut<T> out) {
    const auto wait = std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay);
    return process("fixed_delay", [](std::chrono::steady_clock::duration wait, ChannelIn<T> in, ChannelOut<T> out) {
        for (;;) {
            T value = in();
            sleep(wait);
            out(std::move(value));
        }
    })(wait, std::move(in), std::move(out));
}

}  // namespace csp::lib
