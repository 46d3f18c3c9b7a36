// ipc/manager: Python's multiprocessing.Manager, the CSP way.
//
//     def insert_record(record, records):
//         records.append(record)
//         print("A New record is added\n")
//
//     def print_records(records):
//         for record in records:
//             print("Name: {0}\nScore: {1}\n".format(record[0], record[1]))
//
//     with multiprocessing.Manager() as manager:
//         records = manager.list([('Computers', 1), ('Histoty', 5), ('Hindi', 9)])
//         p1 = Process(target=insert_record, args=(('English', 3), records))
//         p2 = Process(target=print_records, args=(records,))
//         p1.start(); p1.join(); p2.start(); p2.join()
//
// A Manager is a server process that owns the list; `records` is a proxy
// whose methods send requests to it. Here the server is an OS process that
// owns a std::vector and alts over two request channels: `appends` (a record
// to add) and `asks` (answered with the whole list on `answers`). The proxy
// holds the client ends. Sequence runs p1 to its end before p2 starts. When
// the last proxy is gone its ends have retired, the server's guards are all
// disabled, and the server ends: the end of the `with` block.
#include <csp/csp.hpp>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

using Record = std::pair<std::string, int>;
using Records = std::vector<Record>;

struct ListProxy {
    csp::ChannelOut<Record> appends;
    csp::ChannelOut<bool> asks;
    csp::ChannelIn<Records> answers;
    void append(Record r) { appends(std::move(r)); }
    Records items() { asks(true); return answers(); }
};

auto manager = csp::multiprocess(
    [](csp::ChannelIn<Record> appends, csp::ChannelIn<bool> asks, csp::ChannelOut<Records> answers) {
        Records records{{"Computers", 1}, {"Histoty", 5}, {"Hindi", 9}};
        csp::Alternation alt{
            csp::InputGuard(appends, [&](Record r) { records.push_back(std::move(r)); }),
            csp::InputGuard(asks, [&](bool) { answers(records); }),
        };
        for (;;) alt.execute();  // ends when every client has retired
    });

auto insert_record = csp::multiprocess([](Record record, ListProxy records) {
    records.append(std::move(record));
    std::cout << "A New record is added\n\n";
});

auto print_records = csp::multiprocess([](ListProxy records) {
    for (const auto& [name, score] : records.items())
        std::cout << "Name: " << name << "\nScore: " << score << "\n\n";
});

auto clients = csp::process([](ListProxy records) {
    csp::Sequence(insert_record(Record{"English", 3}, records), print_records(records));
});  // its own copy of the proxy retires here

int main() {
    csp::Channel<Record> appends{"appends"};
    csp::Channel<bool> asks{"asks"};
    csp::Channel<Records> answers{"answers"};
    csp::Parallel(manager(appends.reader(), asks.reader(), answers.writer()),
                  clients(ListProxy{appends.writer(), asks.writer(), answers.reader()}));
}
