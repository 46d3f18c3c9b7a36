// cspp.hpp: one network, two languages. For a C++ extension module (built
// with pybind11 against libcsp) that hands channels and processes to Python's
// cspp, and takes channels back.
//
//   #include <cspp/cspp.hpp>
//
//   auto doubler = csp::process([](csp::ChannelIn<std::int64_t> in, csp::ChannelOut<std::int64_t> out) {
//       for (;;) out(2 * in());
//   });
//
//   PYBIND11_MODULE(mine, m) {
//       m.def("numbers", [](const std::string& name) {        // a channel made in C++
//           return cspp::to_python(csp::Channel<std::int64_t>(name));
//       });
//       m.def("doubler", [](py::handle in, py::handle out) {  // a C++ process for cspp.Parallel
//           auto i = cspp::reader_from_python<std::int64_t>(in);  // (one end per statement)
//           auto o = cspp::writer_from_python<std::int64_t>(out);
//           return cspp::to_python(doubler(std::move(i), std::move(o)));
//       });
//   }
//
//   # Python
//   c, d = mine.numbers("c"), mine.numbers("d")
//   Parallel(producer(-c), mine.doubler(+c, -d), consumer(+d))
//
// Values cross the language boundary as Python objects of the C++ type:
// std::int64_t (int), double (float), std::string (str), cspp::Bytes (bytes)
// and std::tuple of those (tuple). A C++ process runs as a fiber of csp's
// runtime; the Python thread that Parallel gives it waits for it with the GIL
// released. Python processes and C++ fibers meet on the channels as any two
// csp processes do: retire, poison, alternation and deadlock detection span
// both.
#pragma once

#include "cspp/ports.hpp"

#include "csp/process.hpp"

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace cspp {

namespace detail {
// (A C++ module cannot pickle: Object's pickle lives in cspp's own module.)
template <class T>
constexpr void check_crossing_type() {
    static_assert(!std::is_same_v<T, Object>,
                  "cspp: channels of Python objects are made in Python (cspp.Channel); C++ hands over typed "
                  "channels (std::int64_t, double, std::string, cspp::Bytes, tuples of them)");
}

[[noreturn]] inline void wrong_channel(py::handle given, const char* wanted) {
    throw py::type_error(std::string("cspp: expected ") + wanted + " of values of the C++ type this function takes, got " +
                         std::string(py::repr(given)));
}
}  // namespace detail

// to_python(channel): a channel made in C++, as a cspp.Channel.
template <class T>
py::object to_python(const csp::Channel<T>& channel) {
    detail::check_crossing_type<T>();
    std::shared_ptr<ChannelBase> core = std::make_shared<Typed<T>>(channel);
    return py::module_::import("cspp").attr("Channel").attr("_of")(core);
}

// channel_from_python<T>(c): a cspp.Channel of values of T (one that C++
// handed over) as a csp::Channel<T>: the same channel.
template <class T>
csp::Channel<T> channel_from_python(py::handle c) {
    detail::check_crossing_type<T>();
    py::object core = py::getattr(c, "_core", py::none());
    auto* base = core.is_none() ? nullptr : core.cast<ChannelBase*>();
    auto* typed = dynamic_cast<Typed<T>*>(base);
    if (!typed) detail::wrong_channel(c, "a cspp.Channel made in C++");
    return typed->channel();
}

// reader_from_python<T>(end) / writer_from_python<T>(end): a cspp end (+c,
// -c) of such a channel, taken over by C++: the end itself moves to C++ (its
// count with it; the Python object can no longer be used), as an end handed
// to a process is that process's. So a C++ process that retires it, or ends
// (the unwinding rule), leaves the channel for it. Take each end in a
// statement of its own (C++ leaves the order of a call's arguments open):
// one that fails (a wrong channel: TypeError) then finds the ends taken
// before it, which are dropped while unwinding and so poison their channels
// (the unwinding rule), as a process failing would; later ones stay Python's.
template <class T>
csp::ChannelIn<T> reader_from_python(py::handle end) {
    detail::check_crossing_type<T>();
    auto* e = py::isinstance<ReadEnd>(end) ? dynamic_cast<In<T>*>(end.cast<ReadEnd*>()) : nullptr;
    if (!e) detail::wrong_channel(end, "a reader end (+c) of a cspp.Channel made in C++");
    return e->take_end();
}
template <class T>
csp::ChannelOut<T> writer_from_python(py::handle end) {
    detail::check_crossing_type<T>();
    auto* e = py::isinstance<WriteEnd>(end) ? dynamic_cast<Out<T>*>(end.cast<WriteEnd*>()) : nullptr;
    if (!e) detail::wrong_channel(end, "a writer end (-c) of a cspp.Channel made in C++");
    return e->take_end();
}

// to_python(process): a C++ process, as a cspp.Process that Parallel,
// Sequence and Spawn run (as a fiber; once). Its result, if not void, comes
// back as a Python object (pybind11's cast).
template <class R>
py::object to_python(csp::Process<R> process) {
    const std::string name = process.name();
    // (Dropped without the GIL: the process's ends leave their channels.)
    std::shared_ptr<std::optional<csp::Process<R>>> held(
        new std::optional<csp::Process<R>>(std::move(process)),
        [](std::optional<csp::Process<R>>* p) { without_gil([&] { delete p; }); });
    std::function<py::object()> run = [held]() -> py::object {
        if (!*held) throw csp::UsageError("cspp: a C++ process runs once");
        csp::Process<R> p = std::move(**held);
        held->reset();
        // (Its failure reaches Python as the exception it ended with:
        // Python's Parallel names the process.)
        try {
            if constexpr (std::is_void_v<R>) {
                without_gil([&] { csp::Parallel(std::move(p)); });
                return py::none();
            } else {
                R result = without_gil([&] { return std::get<0>(csp::Parallel(std::move(p))); });
                return py::cast(std::move(result));
            }
        } catch (const csp::ProcessError& e) {
            e.rethrow_original();
        }
    };
    return py::module_::import("cspp").attr("_cpp_process")(name, py::cpp_function(run));
}

}  // namespace cspp
