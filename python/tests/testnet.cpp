// testnet.cpp: _cspp_testnet, a C++ extension module for the tests of one
// network in two languages (test_mixed.py): channels made in C++ of each type
// that crosses, and C++ processes (fibers) for Python's Parallel.
#include <cspp/cspp.hpp>

#include <csp/csp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>

namespace py = pybind11;
using Record = std::tuple<std::int64_t, double, std::string>;

namespace {

// doubler: every number read, doubled, until its input retires (then its
// output retires: the unwinding rule).
auto doubler = csp::process("doubler", [](csp::ChannelIn<std::int64_t> in, csp::ChannelOut<std::int64_t> out) {
    std::int64_t n = 0;
    try {
        for (;; ++n) out(2 * in());
    } catch (const csp::ChannelRetireException&) {
        out.retire();
    }
    return n;
});

auto summer = csp::process("summer", [](csp::ChannelIn<std::int64_t> in) {
    std::int64_t sum = 0;
    try {
        for (;;) sum += in();
    } catch (const csp::ChannelRetireException&) {
    }
    return sum;
});

auto describe = csp::process("describe", [](csp::ChannelIn<Record> in, csp::ChannelOut<std::string> out) {
    for (;;) {
        auto [i, d, s] = in();
        out(s + ":" + std::to_string(i) + ":" + std::to_string(d));
    }
});

auto echo_bytes = csp::process("echo_bytes", [](csp::ChannelIn<cspp::Bytes> in, csp::ChannelOut<cspp::Bytes> out) {
    for (;;) {
        cspp::Bytes b = in();
        b.data += '!';
        out(std::move(b));
    }
});

auto failing = csp::process("failing", [](csp::ChannelIn<std::int64_t> in) {
    if (in() < 0) throw std::out_of_range("a negative number");
});

std::atomic<bool> g_about_to_take_gil{false};

}  // namespace

PYBIND11_MODULE(_cspp_testnet, m) {
    m.def("int_channel", [](const std::string& name, long long buffer) {
        return cspp::to_python(csp::Channel<std::int64_t>(name, csp::buffer(buffer)));
    }, py::arg("name"), py::arg("buffer") = 0);
    m.def("str_channel", [](const std::string& name) { return cspp::to_python(csp::Channel<std::string>(name)); });
    m.def("record_channel", [](const std::string& name) { return cspp::to_python(csp::Channel<Record>(name)); });
    m.def("bytes_channel", [](const std::string& name) { return cspp::to_python(csp::Channel<cspp::Bytes>(name)); });
    m.def("double_channel", [](const std::string& name) { return cspp::to_python(csp::Channel<double>(name)); });
    // (Each end converted in a statement of its own, in order: see cspp.hpp.)
    m.def("doubler", [](py::handle in, py::handle out) {
        auto i = cspp::reader_from_python<std::int64_t>(in);
        auto o = cspp::writer_from_python<std::int64_t>(out);
        return cspp::to_python(doubler(std::move(i), std::move(o)));
    });
    m.def("summer", [](py::handle in) { return cspp::to_python(summer(cspp::reader_from_python<std::int64_t>(in))); });
    m.def("describe", [](py::handle in, py::handle out) {
        auto i = cspp::reader_from_python<Record>(in);
        auto o = cspp::writer_from_python<std::string>(out);
        return cspp::to_python(describe(std::move(i), std::move(o)));
    });
    m.def("echo_bytes", [](py::handle in, py::handle out) {
        auto i = cspp::reader_from_python<cspp::Bytes>(in);
        auto o = cspp::writer_from_python<cspp::Bytes>(out);
        return cspp::to_python(echo_bytes(std::move(i), std::move(o)));
    });
    m.def("failing", [](py::handle in) { return cspp::to_python(failing(cspp::reader_from_python<std::int64_t>(in))); });
    // A channel back from Python: its name, as C++ sees it.
    m.def("name_in_cpp", [](py::handle c) { return std::string(cspp::channel_from_python<std::int64_t>(c).name()); });
    // C++ code called by a Python thread that lets the GIL go for `seconds`
    // and then takes it back (cspp's NoGil); about_to_take_gil() is true from just
    // before it does.
    m.def("away_from_python", [](double seconds) {
        cspp::without_gil([&] {
            std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
            g_about_to_take_gil.store(true);
            return 0;
        });
    });
    m.def("about_to_take_gil", [] { return g_about_to_take_gil.load(); });
    // A blocking read from C++ code called by a Python thread.
    m.def("read_one", [](py::handle c) {
        csp::Channel<std::int64_t> ch = cspp::channel_from_python<std::int64_t>(c);
        return cspp::without_gil([&] {
            csp::ChannelIn<std::int64_t> in = ch.reader();
            const std::int64_t v = in.read();
            in.retire();
            return v;
        });
    });
}
