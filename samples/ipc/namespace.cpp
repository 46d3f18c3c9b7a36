// ipc/namespace: a Manager's Namespace, the CSP way.
//
//     def Mng_NaSp(using_ns):
//         using_ns.x += 5
//         using_ns.y *= 10
//
//     manager = multiprocessing.Manager()
//     using_ns = manager.Namespace()
//     using_ns.x = 1
//     using_ns.y = 1
//     print('before', using_ns)
//     p = multiprocessing.Process(target=Mng_NaSp, args=(using_ns,))
//     p.start(); p.join()
//     print('after', using_ns)
//
// The Namespace lives in a server process (an OS process, as a Manager is)
// that owns one small struct. Whoever reads the `get` channel receives the
// current value; whoever writes the `set` channel replaces it. The server
// offers both at once with an output guard and an input guard, so it never
// waits on a client that is not there. The struct is trivially copyable, so
// it crosses processes by plain memcpy. The server ends when every client's
// ends have retired.
//
// Prints:
//   before Namespace(x=1, y=1)
//   after Namespace(x=6, y=10)
#include <csp/csp.hpp>
#include <iostream>

struct Namespace {
    int x, y;
};

std::ostream& operator<<(std::ostream& os, const Namespace& ns) {
    return os << "Namespace(x=" << ns.x << ", y=" << ns.y << ")";
}

auto server = csp::multiprocess([](csp::ChannelOut<Namespace> get, csp::ChannelIn<Namespace> set) {
    Namespace ns{1, 1};  // using_ns.x = 1; using_ns.y = 1
    for (;;) {
        auto r = csp::AltSelect(csp::OutputGuard(get, ns), csp::InputGuard(set));
        if (r.index() == 1) ns = std::get<1>(r);  // someone wrote a new value
    }
});

auto Mng_NaSp = csp::multiprocess([](csp::ChannelIn<Namespace> get, csp::ChannelOut<Namespace> set) {
    Namespace ns = get();
    ns.x += 5;
    ns.y *= 10;
    set(ns);
});

auto parent = csp::process([](csp::ChannelIn<Namespace> get, csp::ChannelOut<Namespace> set) {
    std::cout << "before " << get() << '\n';
    csp::Parallel(Mng_NaSp(get, set));  // p.start(); p.join()
    std::cout << "after " << get() << '\n';
});

int main() {
    csp::Channel<Namespace> get{"get"}, set{"set"};
    csp::Parallel(server(get.writer(), set.reader()), parent(get.reader(), set.writer()));
}
