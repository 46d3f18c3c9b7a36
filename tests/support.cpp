#include "support.hpp"

#include <cstdlib>
#include <string_view>
#include <thread>
#include <utility>

namespace csp_test {

Placement placement() {
    static const Placement chosen = [] {
        const char* value = std::getenv("CSP_TEST_PLACEMENT");
        return value != nullptr && std::string_view(value) == "threads" ? Placement::threads
                                                                         : Placement::fibers;
    }();
    return chosen;
}

const char* placement_name() {
    return placement() == Placement::threads ? "plain threads" : "fibers";
}

namespace {

void run_on_fibers(std::vector<Body> bodies) {
    // The body is the process's argument, so the ends it captured are
    // destroyed when the body ends (API.md), not when Parallel returns.
    auto as_process = csp::process([](Body body) { body(); });
    std::vector<csp::Process<>> processes;
    processes.reserve(bodies.size());
    for (Body& body : bodies) processes.push_back(as_process(std::move(body)));
    bodies.clear();
    csp::Parallel(std::move(processes));
}

void run_on_threads(std::vector<Body> bodies) {
    std::vector<std::exception_ptr> failures(bodies.size());
    std::vector<std::thread> threads;
    threads.reserve(bodies.size());
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        threads.emplace_back([&failures, i, body = std::move(bodies[i])]() mutable {
            try {
                body();
            } catch (const csp::ChannelPoisonException&) {
            } catch (const csp::ChannelRetireException&) {
            } catch (...) {
                failures[i] = std::current_exception();
            }
            body = nullptr;  // the captured ends leave now, as a process's do
        });
    }
    for (std::thread& thread : threads) thread.join();
    for (const std::exception_ptr& failure : failures)
        if (failure) std::rethrow_exception(failure);
}

}  // namespace

void run_network(std::vector<Body> bodies) {
    if (placement() == Placement::threads)
        run_on_threads(std::move(bodies));
    else
        run_on_fibers(std::move(bodies));
}

std::string message_of(std::exception_ptr pointer) {
    if (!pointer) return "";
    try {
        std::rethrow_exception(pointer);
    } catch (const std::exception& error) {
        return error.what();
    } catch (...) {
        return "";
    }
}

}  // namespace csp_test
