// dining_philosophers: five philosophers, five forks and a butler (Hoare's
// CSP book, section 2.5; the occam "college").
//
//   Philosopher i, again and again: asks the butler for a seat, picks up
//   fork i (on the left) and fork i+1 (on the right), eats, puts both down,
//   tells the butler it stands up, and thinks (here eating and thinking take
//   no time).
//
//   Each fork is a process with one channel from each of its two neighbours:
//   it lets one of them pick it up, then waits for that one to put it down.
//   It chooses with fair_execute, which starts looking after the neighbour
//   it chose last time, so a neighbour who is waiting gets it next: no one
//   can keep a fork from the other.
//
//   The butler seats at most four at a time, so the five can never each
//   hold a left fork and wait for a right one (the deadlock of the story).
//   It too chooses with fair_execute, so no philosopher waits for a seat
//   while others are seated again and again: no philosopher starves.
//
// After kMeals seatings in all, the butler retires its sit-down channels,
// lets the seated philosophers finish and stand up, and returns how many
// meals each had. A philosopher who asks for a seat after that gets
// csp::ChannelRetireException, which ends it normally and retires its ends;
// a fork whose two neighbours have both left has every guard disabled, so
// its choice throws ChannelRetireException and it ends too. No process is
// left blocked.
//
// Prints "philosopher i ate N meals" for i = 0..4, then "50000 meals in
// all", then "no philosopher starved" when every philosopher ate at least
// once. N varies from run to run: with several workers it also depends on
// how the OS schedules them (a philosopher whose worker thread is set aside
// for a while cannot ask for anything meanwhile).
#include <csp/csp.hpp>

#include <array>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

constexpr int kPhilosophers = 5;
constexpr int kSeats = kPhilosophers - 1;
constexpr long kMeals = 50000;

using Meals = std::array<long, kPhilosophers>;

// Every message is the sender's number: philosopher i sends i.
auto Philosopher = csp::process([](int me, csp::ChannelOut<int> sit, csp::ChannelOut<int> stand,
                                   csp::ChannelOut<int> left_fork, csp::ChannelOut<int> right_fork) {
    for (;;) {
        sit(me);  // once the butler stops seating, this throws ChannelRetireException
        left_fork(me);   // pick up
        right_fork(me);
        // eat
        left_fork(me);   // put down
        right_fork(me);
        stand(me);
        // think
    }
});

auto Fork = csp::process([](csp::ChannelIn<int> left, csp::ChannelIn<int> right) {
    csp::Alternation alt{csp::InputGuard(left), csp::InputGuard(right)};
    for (;;) {
        std::size_t side = alt.fair_execute();  // picked up from one side...
        (side == 0 ? left : right).read();      // ...and put down from the same side
    }
});

auto Butler = csp::process([](std::vector<csp::ChannelIn<int>> sit,
                              std::vector<csp::ChannelIn<int>> stand, long meals) {
    Meals eaten{};
    int seated = 0;
    long seatings = 0;
    auto sits_down = [&](int who) {
        ++seated;
        ++seatings;
        ++eaten[who];
    };
    auto stands_up = [&](int) { --seated; };

    // Two alternations over the same ends. `free_seat` (sit-down guards
    // 0..4, stand-up guards 5..9) serves while a seat is free; `full` (the
    // stand-up guards alone) while the table is full. A round-robin promises
    // a turn only to a guard that is enabled whenever its turn comes: had the
    // butler one alternation with .when(seated < 4) on the sit-downs, every
    // choice made with the table full would move its round-robin past them,
    // and the philosopher last in line could wait for ever. Here `free_seat`
    // chooses only when all its guards are enabled, so a philosopher waiting
    // for a seat is seated within ten of its choices.
    std::vector<csp::InputGuard<int>> any_request, stand_requests;
    for (auto& in : sit) any_request.push_back(csp::InputGuard(in, sits_down));
    for (auto& in : stand) {
        any_request.push_back(csp::InputGuard(in, stands_up));
        stand_requests.push_back(csp::InputGuard(in, stands_up));
    }
    csp::Alternation free_seat{std::move(any_request)};
    csp::Alternation full{std::move(stand_requests)};

    while (seatings < meals) {
        if (seated < kSeats) {
            free_seat.fair_execute();
        } else {
            full.fair_execute();
        }
    }
    for (auto& in : sit) in.retire();  // no more seats: asking now throws
    while (seated > 0) full.fair_execute();
    return eaten;
});

// Table: the philosophers and forks, run in parallel as one process.
auto Table = csp::process([](std::vector<csp::Process<>> members) {
    csp::Parallel(std::move(members));
});

int main() {
    std::vector<csp::Channel<int>> sit, stand, left_hand, right_hand;
    for (int i = 0; i < kPhilosophers; ++i) {
        const std::string n = std::to_string(i);
        sit.emplace_back("sit" + n);
        stand.emplace_back("stand" + n);
        left_hand.emplace_back("left_hand" + n);    // philosopher i -> fork i
        right_hand.emplace_back("right_hand" + n);  // philosopher i -> fork i+1
    }

    std::vector<csp::Process<>> table;
    std::vector<csp::ChannelIn<int>> sit_requests, stand_requests;
    for (int i = 0; i < kPhilosophers; ++i) {
        const int previous = (i + kPhilosophers - 1) % kPhilosophers;
        table.push_back(Philosopher(i, sit[i].writer(), stand[i].writer(), left_hand[i].writer(),
                                    right_hand[i].writer()));
        // Fork i lies between philosopher i-1 (its left) and philosopher i (its right).
        table.push_back(Fork(right_hand[previous].reader(), left_hand[i].reader()));
        sit_requests.push_back(sit[i].reader());
        stand_requests.push_back(stand[i].reader());
    }

    auto [eaten, _] = csp::Parallel(Butler(std::move(sit_requests), std::move(stand_requests), kMeals),
                                    Table(std::move(table)));

    long total = 0;
    bool everyone_ate = true;
    for (int i = 0; i < kPhilosophers; ++i) {
        std::printf("philosopher %d ate %ld meals\n", i, eaten[i]);
        total += eaten[i];
        everyone_ate &= eaten[i] > 0;
    }
    std::printf("%ld meals in all\n", total);
    if (everyone_ate) std::printf("no philosopher starved\n");
    return total == kMeals && everyone_ate ? 0 : 1;
}
