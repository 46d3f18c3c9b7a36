// pipeline_module.cpp: cspp_pipeline, the C++ half of mixed_pipeline.py. It
// hands Python a channel type made in C++ and a process that is a whole
// pipeline of C++ fibers: the first stage doubles, the others pass numbers on.
#include <cspp/cspp.hpp>

#include <csp/csp.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace py = pybind11;
using Number = std::int64_t;

namespace {

auto doubler = csp::process("doubler", [](csp::ChannelIn<Number> in, csp::ChannelOut<Number> out) {
    for (;;) out(2 * in());
});

auto relay = csp::process("relay", [](csp::ChannelIn<Number> in, csp::ChannelOut<Number> out) {
    for (;;) out(in());
});

// pipeline: `stages` fibers in a chain. When its input retires, the
// unwinding rule retires each stage's output in turn, and so `out`.
auto pipeline = csp::process("pipeline", [](csp::ChannelIn<Number> in, csp::ChannelOut<Number> out, int stages) {
    std::vector<csp::Channel<Number>> links(static_cast<std::size_t>(stages - 1));
    std::vector<csp::Process<>> chain;
    chain.push_back(doubler(std::move(in), stages > 1 ? links[0].writer() : out));
    for (int i = 1; i < stages; ++i) {
        chain.push_back(relay(links[i - 1].reader(), i + 1 < stages ? links[i].writer() : out));
    }
    csp::Parallel(std::move(chain));
});

}  // namespace

PYBIND11_MODULE(cspp_pipeline, m) {
    m.doc() = "a C++ fiber pipeline for cspp (samples/python/mixed_pipeline.py)";
    m.def("numbers", [](const std::string& name) { return cspp::to_python(csp::Channel<Number>(name)); },
          "a channel of 64-bit integers, made in C++");
    m.def("pipeline", [](py::handle in, py::handle out, int stages) {
        if (stages < 1) throw py::value_error("a pipeline has at least one stage");
        // (One end per statement, in order: see cspp.hpp.)
        auto i = cspp::reader_from_python<Number>(in);
        auto o = cspp::writer_from_python<Number>(out);
        return cspp::to_python(pipeline(std::move(i), std::move(o), stages));
    }, py::arg("cin"), py::arg("cout"), py::arg("stages") = 8);
}
