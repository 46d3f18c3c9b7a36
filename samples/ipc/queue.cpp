// ipc/queue: Python's multiprocessing.Queue, the CSP way.
//
//     def f(q):
//         q.put([42, None, 'hello'])
//
//     q = Queue()
//     p = Process(target=f, args=(q,))
//     p.start()
//     print(q.get())    # prints "[42, None, 'hello']"
//     p.join()
//
// A Queue is a buffered channel: put() is a write that does not wait for a
// reader, get() is a read. csp::multiprocess is Process(target=f): the child
// is a forked OS process, and the channel, made before the fork, works from
// both sides. Python's list of anything becomes a std::vector of a
// std::variant (None is std::monostate); such a value crosses processes by
// serialization, as Python pickles the list.
//
// Prints: [42, None, 'hello']
#include <csp/csp.hpp>
#include <iostream>
#include <string>
#include <variant>
#include <vector>

using Object = std::variant<std::monostate, int, std::string>;  // None, an int or a str
using List = std::vector<Object>;

// repr: what Python's print shows for the list.
std::string repr(const Object& o) {
    if (std::holds_alternative<std::monostate>(o)) return "None";
    if (auto i = std::get_if<int>(&o)) return std::to_string(*i);
    return "'" + std::get<std::string>(o) + "'";
}
std::string repr(const List& list) {
    std::string s = "[";
    for (std::size_t i = 0; i < list.size(); ++i) s += (i ? ", " : "") + repr(list[i]);
    return s + "]";
}

auto f = csp::multiprocess([](csp::ChannelOut<List> q) {
    q(List{42, std::monostate{}, "hello"});  // q.put(...): lands in the buffer
});

int main() {
    csp::Channel<List> q{"q", csp::buffer(8)};  // q = Queue()
    csp::ChannelIn<List> get = q.reader();

    // p.start(); p.join(): Parallel forks the child and waits for it. The
    // list waits in the channel's buffer, so the parent may read it after
    // the child has ended (a buffered channel is drained before its
    // writers' retire shows).
    csp::Parallel(f(q.writer()));
    std::cout << repr(get()) << '\n';  // q.get()
}
