// ipc/value_array: Python's shared Value and Array, the CSP way.
//
//     def f(n, a):
//         n.value = 3.1415927
//         for i in range(len(a)):
//             a[i] = -a[i]
//
//     num = Value('d', 0.0)
//     arr = Array('i', range(10))
//     p = Process(target=f, args=(num, arr))
//     p.start(); p.join()
//     print(num.value)
//     print(arr[:])
//
// Python puts num and arr in shared memory, guarded by a lock. CSP shares
// nothing: an owner process holds the double and the array, and the others
// ask it over channels. Reading `get` receives the value, writing `set`
// replaces it; the owner offers all four at once with guards. The owner is a
// fiber in the parent, the child a forked OS process: channels work the same
// between them. The owner ends when every client's ends have retired. (The
// child's read-change-write is no more atomic than Python's `a[i] = -a[i]`;
// with several writers, have the owner do the change.)
//
// Prints:
//   3.1415927
//   [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
#include <csp/csp.hpp>
#include <charconv>
#include <iostream>
#include <string>
#include <vector>

using Array = std::vector<int>;

// Shared<T>: a client's handle on one shared variable, like num or arr.
template <typename T>
struct Shared {
    csp::ChannelIn<T> get;
    csp::ChannelOut<T> set;
};

auto owner = csp::process([](csp::ChannelOut<double> num_get, csp::ChannelIn<double> num_set,
                             csp::ChannelOut<Array> arr_get, csp::ChannelIn<Array> arr_set) {
    double num = 0.0;                       // Value('d', 0.0)
    Array arr{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // Array('i', range(10))
    for (;;) {
        auto r = csp::AltSelect(csp::OutputGuard(num_get, num), csp::InputGuard(num_set),
                                csp::OutputGuard(arr_get, arr), csp::InputGuard(arr_set));
        if (r.index() == 1) num = std::get<1>(r);
        if (r.index() == 3) arr = std::get<3>(r);
    }
});

auto f = csp::multiprocess([](Shared<double> n, Shared<Array> a) {
    n.set(3.1415927);
    Array values = a.get();
    for (int& v : values) v = -v;
    a.set(values);
});

auto parent = csp::process([](Shared<double> num, Shared<Array> arr) {
    csp::Parallel(f(num, arr));  // p.start(); p.join()
    char text[32];               // print(num.value): the shortest text that reads back the same
    std::cout << std::string(text, std::to_chars(text, text + sizeof text, num.get()).ptr) << '\n';
    std::string s = "[";         // print(arr[:])
    for (int v : arr.get()) s += (s.size() > 1 ? ", " : "") + std::to_string(v);
    std::cout << s << "]\n";
});

int main() {
    csp::Channel<double> num_get{"num.get"}, num_set{"num.set"};
    csp::Channel<Array> arr_get{"arr.get"}, arr_set{"arr.set"};
    csp::Parallel(owner(num_get.writer(), num_set.reader(), arr_get.writer(), arr_set.reader()),
                  parent(Shared<double>{num_get.reader(), num_set.writer()},
                         Shared<Array>{arr_get.reader(), arr_set.writer()}));
}
