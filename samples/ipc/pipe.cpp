// ipc/pipe: Python's multiprocessing.Pipe, the CSP way.
//
//     def f(conn):
//         conn.send([42, None, 'hello'])
//         conn.close()
//
//     parent_conn, child_conn = Pipe()
//     p = Process(target=f, args=(child_conn,))
//     p.start()
//     print(parent_conn.recv())   # prints "[42, None, 'hello']"
//     p.join()
//
// A Pipe is duplex: each of its two connections can send and receive. A CSP
// channel goes one way, so a Pipe is two channels, one per direction, and a
// Connection holds the writing end of one and the reading end of the other.
// send() is a write, recv() a read, close() is retire (or just leaving the
// body, which destroys the ends). The child is a forked OS process
// (csp::multiprocess); the parent's side runs as a fiber process beside it.
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

// Connection: one end of a duplex pipe.
struct Connection {
    csp::ChannelOut<List> out;
    csp::ChannelIn<List> in;
    void send(List v) { out(std::move(v)); }
    List recv() { return in(); }
    void close() { csp::retire(out, in); }
};

// Pipe: two channels crossed, so what one connection sends the other receives.
// Buffered, like an OS pipe: send() need not wait for recv().
struct Pipe {
    csp::Channel<List> down{"parent->child", csp::buffer(8)}, up{"child->parent", csp::buffer(8)};
    Connection parent_conn{down.writer(), up.reader()};
    Connection child_conn{up.writer(), down.reader()};
};

auto f = csp::multiprocess([](Connection conn) {
    conn.send({42, std::monostate{}, "hello"});
    conn.close();
});

auto parent = csp::process([](Connection conn) { std::cout << repr(conn.recv()) << '\n'; });

int main() {
    Pipe pipe;
    // p.start(), the parent's recv() and p.join(), all in one Parallel.
    csp::Parallel(f(std::move(pipe.child_conn)), parent(std::move(pipe.parent_conn)));
}
