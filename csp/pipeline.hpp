// pipeline.hpp: csp::pipeline, a network built from its stages.
//
//   auto source = csp::process([](csp::ChannelOut<int> out) { for (int i = 1; i <= 100; ++i) out(i); });
//   auto summer = csp::process([](csp::ChannelIn<long> in) { ... return total; });
//   long sum = csp::pipeline(source, csp::stage([](int x) { return long{x} * x; }) * 4, summer);
//
// pipeline(first, stages..., last) makes a channel between each two
// consecutive parts, runs all of them in Parallel and returns what `last`
// returned. `first` is a process factory (csp::process or csp::multiprocess)
// whose body's only parameter is a ChannelOut<A>; `last` one whose body takes
// a ChannelIn<Z>; each stage is a factory whose body takes (ChannelIn<A>,
// ChannelOut<B>), or csp::stage(f) for a callable B f(A). `stage * n` runs n
// copies on the same two channels (outputs in whatever order they finish);
// csp::ordered(stage * n) keeps the input order (values are numbered on the
// way in and put back in order on the way out; a factory's copies are dealt
// the values in turn, and must write one value for each they read). The
// network ends as any does: `first` returns (its end retires, and the
// retire flows down), or a poison spreads from anywhere.
//
// The element types are read from the bodies' parameter lists, so bodies
// must not be generic lambdas (auto parameters).
#pragma once

#include "csp/channel.hpp"
#include "csp/multiprocess.hpp"
#include "csp/process.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace csp {

// Stage: a callable B f(A) as a pipeline stage, run `copies` times.
template <class F>
struct Stage {
    F f;
    std::size_t copies = 1;
    bool ordered = false;
};

// stage(f): f as a stage of a pipeline.
template <class F>
Stage<std::decay_t<F>> stage(F&& f) {
    return {std::forward<F>(f)};
}

// FactoryStage: a process factory as a stage, run `copies` times.
template <class Factory>
struct FactoryStage {
    Factory factory;
    std::size_t copies = 1;
    bool ordered = false;
};

template <class F>
Stage<F> operator*(Stage<F> s, std::size_t n) {
    s.copies = n;
    return s;
}
template <class F>
FactoryStage<ProcessFactory<F>> operator*(ProcessFactory<F> factory, std::size_t n) {
    return {std::move(factory), n};
}
template <class F>
FactoryStage<MultiProcessFactory<F>> operator*(MultiProcessFactory<F> factory, std::size_t n) {
    return {std::move(factory), n};
}

// ordered(stage * n): its copies' outputs in the order of their inputs. (A
// factory's copies are dealt the values in turn and their outputs taken in
// the same turn, so each copy must write one value for each it reads.)
template <class F>
Stage<F> ordered(Stage<F> s) {
    s.ordered = true;
    return s;
}
template <class Factory>
FactoryStage<Factory> ordered(FactoryStage<Factory> s) {
    s.ordered = true;
    return s;
}

namespace detail {

// params_of<F>: the decayed parameter types of a non-generic callable.
template <class F>
struct params_of : params_of<decltype(&F::operator())> {};
template <class C, class R, class... A>
struct params_of<R (C::*)(A...) const> {
    using type = std::tuple<std::decay_t<A>...>;
};
template <class C, class R, class... A>
struct params_of<R (C::*)(A...)> {
    using type = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct params_of<R (*)(A...)> {
    using type = std::tuple<std::decay_t<A>...>;
};
// (noexcept bodies: the same.)
template <class C, class R, class... A>
struct params_of<R (C::*)(A...) const noexcept> : params_of<R (C::*)(A...) const> {};
template <class C, class R, class... A>
struct params_of<R (C::*)(A...) noexcept> : params_of<R (C::*)(A...)> {};
template <class R, class... A>
struct params_of<R (*)(A...) noexcept> : params_of<R (*)(A...)> {};

// factory_param<Factory, i>: the value type of the i-th end its body takes.
template <class Factory>
struct factory_body;
template <class F>
struct factory_body<ProcessFactory<F>> {
    using type = F;
};
template <class F>
struct factory_body<MultiProcessFactory<F>> {
    using type = F;
};
template <class Factory, std::size_t I>
using factory_param =
    typename std::tuple_element_t<I, typename params_of<typename factory_body<Factory>::type>::type>::value_type;

// stage_output<S, A>: what stage S writes when it reads A.
template <class S, class A>
struct stage_output {
    using type = factory_param<S, 1>;  // a factory
};
template <class F, class A>
struct stage_output<Stage<F>, A> {
    using type = std::decay_t<std::invoke_result_t<F&, A&&>>;
};
template <class Factory, class A>
struct stage_output<FactoryStage<Factory>, A> {
    using type = factory_param<Factory, 1>;
};

// add_stage: the processes of one stage, reading `in` and writing `out`.
template <class Factory, class A, class B>
void add_stage(std::vector<Process<>>& procs, const Factory& factory, std::size_t copies, ChannelIn<A>& in,
               ChannelOut<B>& out) {
    for (std::size_t i = 0; i < copies; ++i) procs.push_back(factory(in, out));
}

template <class F, class A, class B>
void add_stage(std::vector<Process<>>& procs, const Stage<F>& s, ChannelIn<A>& in, ChannelOut<B>& out,
               std::size_t k) {
    if (!s.ordered) {
        auto worker = process("stage " + std::to_string(k), [](F f, ChannelIn<A> in, ChannelOut<B> out) {
            for (;;) out(B(f(in())));
        });
        for (std::size_t i = 0; i < s.copies; ++i) procs.push_back(worker(s.f, in, out));
        return;
    }
    // Ordered: number the values, let the copies work, put them back in order.
    using Task = std::pair<std::uint64_t, A>;
    using Done = std::pair<std::uint64_t, B>;
    Channel<Task> tasks{"stage " + std::to_string(k) + " tasks"};
    Channel<Done> done{"stage " + std::to_string(k) + " done"};
    procs.push_back(process("stage " + std::to_string(k) + " numbering", [](ChannelIn<A> in, ChannelOut<Task> out) {
        for (std::uint64_t n = 0;; ++n) out(Task{n, in()});
    })(in, tasks.writer()));
    auto worker = process("stage " + std::to_string(k), [](F f, ChannelIn<Task> in, ChannelOut<Done> out) {
        for (;;) {
            Task t = in();
            out(Done{t.first, B(f(std::move(t.second)))});
        }
    });
    for (std::size_t i = 0; i < s.copies; ++i) procs.push_back(worker(s.f, tasks.reader(), done.writer()));
    procs.push_back(process("stage " + std::to_string(k) + " ordering", [](ChannelIn<Done> in, ChannelOut<B> out) {
        std::map<std::uint64_t, B> early;
        std::uint64_t next = 0;
        for (;;) {
            Done d = in();
            early.emplace(d.first, std::move(d.second));
            for (auto it = early.begin(); it != early.end() && it->first == next; it = early.erase(it), ++next) {
                out(std::move(it->second));
            }
        }
    })(done.reader(), out));
}

// add_ordered_stage: `copies` copies of a factory, each on channels of its
// own: a dealer hands them the values in turn, a collector takes their
// outputs in the same turn. When the input retires, the dealer's ends
// retire, each copy ends once it has passed its last value on, and the
// collector meets the retire of the very copy whose turn comes after the
// last value: every value has gone out, in order.
template <class Factory, class A, class B>
void add_ordered_stage(std::vector<Process<>>& procs, const Factory& factory, std::size_t copies, ChannelIn<A>& in,
                       ChannelOut<B>& out, std::size_t k) {
    const std::string name = "stage " + std::to_string(k);
    std::vector<ChannelOut<A>> to;
    std::vector<ChannelIn<B>> from;
    for (std::size_t i = 0; i < copies; ++i) {
        Channel<A> a{name + " to copy " + std::to_string(i)};
        Channel<B> b{name + " from copy " + std::to_string(i)};
        procs.push_back(factory(a.reader(), b.writer()));
        to.push_back(a.writer());
        from.push_back(b.reader());
    }
    procs.push_back(process(name + " dealing", [](ChannelIn<A> in, std::vector<ChannelOut<A>> to) {
        for (std::size_t i = 0;; i = (i + 1) % to.size()) to[i](in());
    })(in, std::move(to)));
    procs.push_back(process(name + " collecting", [](std::vector<ChannelIn<B>> from, ChannelOut<B> out) {
        for (std::size_t i = 0;; i = (i + 1) % from.size()) out(from[i]());
    })(std::move(from), out));
}

// build: the channels and processes from `in` on; returns the last's process.
template <class A, class Last>
auto build(std::vector<Process<>>&, ChannelIn<A> in, std::size_t, Last& last) {
    static_assert(std::is_same_v<factory_param<Last, 0>, A>,
                  "csp::pipeline: the last part's body must take a ChannelIn of what the part before it writes");
    return last(std::move(in));
}

template <class A, class S, class Next, class... Rest>
auto build(std::vector<Process<>>& procs, ChannelIn<A> in, std::size_t k, S& s, Next& next, Rest&... rest) {
    using B = typename stage_output<S, A>::type;
    if constexpr (requires { s.copies; }) {
        // (Nobody would read what the part before writes: the pipeline
        // would end at once with nothing, or an ordered one deadlock.)
        if (s.copies == 0) {
            throw UsageError("csp::pipeline: stage " + std::to_string(k) + " has no copies (stage * n needs n >= 1)");
        }
    }
    Channel<B> link{"pipeline " + std::to_string(k)};
    auto out = link.writer();
    if constexpr (requires { s.f; }) {
        add_stage(procs, s, in, out, k);
    } else if constexpr (requires { s.factory; }) {
        static_assert(std::is_same_v<factory_param<decltype(s.factory), 0>, A>,
                      "csp::pipeline: a stage's body must take a ChannelIn of what the part before it writes");
        if (s.ordered) add_ordered_stage(procs, s.factory, s.copies, in, out, k);
        else add_stage(procs, s.factory, s.copies, in, out);
    } else {
        static_assert(std::is_same_v<factory_param<S, 0>, A>,
                      "csp::pipeline: a stage's body must take a ChannelIn of what the part before it writes");
        add_stage(procs, s, 1, in, out);
    }
    in.retire();  // (the stage's processes hold their own copies)
    out.retire();
    return build(procs, link.reader(), k + 1, next, rest...);
}

}  // namespace detail

// pipeline(first, stages..., last): see the top of this file.
template <class First, class... Rest>
    requires(sizeof...(Rest) >= 1)
auto pipeline(First first, Rest... rest) {
    using A = detail::factory_param<First, 0>;
    Channel<A> head{"pipeline 0"};
    std::vector<Process<>> middle;
    auto last = detail::build(middle, head.reader(), 1, rest...);
    auto results = Parallel(first(head.writer()), std::move(middle), std::move(last));
    return std::get<2>(std::move(results));
}

}  // namespace csp
