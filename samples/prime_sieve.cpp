// prime_sieve: the sieve of Eratosthenes as a growing chain of processes
// (occam's and Go's classic; McIlroy's, after Hoare's CSP paper).
//
// A generator writes 2, 3, 4, ... up to a limit. The sieve reads its first
// number, which is a prime, sends it to the printer, then becomes two
// processes: a filter that passes on what its prime does not divide, and a
// new sieve behind it. So each prime found adds a process to the chain.
// When the generator is done it retires its channel; each filter's read then
// ends it, retiring the channel behind it, and the retire runs down the
// chain to the last sieve and then to the printer. Nothing is left blocked.
//
// Draw it: ./prime_sieve 60 sieve.dot writes the network as Graphviz DOT
// (csp::write_graph) when 8 primes have been found: the chain of filters as
// it grows (docs/tutorial/pictures/sieve.svg). With CSP_GRAPH=sieve.dot a
// running sieve draws itself on SIGUSR1.
#include <csp/csp.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

auto generate = csp::process("generate", [](csp::ChannelOut<int> out, int limit) {
    for (int n = 2; n <= limit; ++n) out(n);
});

auto filter = csp::process("filter", [](csp::ChannelIn<int> in, csp::ChannelOut<int> out, int prime) {
    for (;;) {
        const int n = in();
        if (n % prime != 0) out(n);
    }
});

// sieve: the first number it reads is a prime; then a filter for it, and a
// sieve for what passes.
void sieve_body(csp::ChannelIn<int> in, csp::ChannelOut<int> primes);
auto sieve = csp::process("sieve", sieve_body);

void sieve_body(csp::ChannelIn<int> in, csp::ChannelOut<int> primes) {
    const int prime = in();
    primes(prime);
    csp::Channel<int> rest{"multiples of " + std::to_string(prime) + " removed"};
    csp::Parallel(filter(std::move(in), rest.writer(), prime), sieve(rest.reader(), std::move(primes)));
}

auto collect = csp::process("print", [](csp::ChannelIn<int> primes, std::string picture) {
    std::vector<int> found;
    try {
        for (;;) {
            found.push_back(primes());
            if (found.size() == 8 && !picture.empty()) csp::write_graph(picture);
        }
    } catch (const csp::ChannelRetireException&) {
    }
    return found;
});

}  // namespace

int main(int argc, char** argv) {
    const int limit = argc > 1 ? std::atoi(argv[1]) : 10000;
    const std::string picture = argc > 2 ? argv[2] : "";
    csp::Channel<int> numbers{"numbers"}, primes{"primes"};
    auto [g, s, found] = csp::Parallel(generate(numbers.writer(), limit), sieve(numbers.reader(), primes.writer()),
                                       collect(primes.reader(), picture));

    std::printf("the primes up to 100:");
    for (int p : found) {
        if (p > 100) break;
        std::printf(" %d", p);
    }
    std::printf("\n%zu primes up to %d, the last %d, found by a chain of %zu filters\n", found.size(), limit,
                found.empty() ? 0 : found.back(), found.size());
    // The same count, the sequential way.
    std::vector<bool> composite(static_cast<std::size_t>(limit) + 1);
    std::size_t count = 0;
    for (int n = 2; n <= limit; ++n) {
        if (composite[static_cast<std::size_t>(n)]) continue;
        ++count;
        for (long m = static_cast<long>(n) * n; m <= limit; m += n) composite[static_cast<std::size_t>(m)] = true;
    }
    if (count != found.size()) {
        std::printf("wrong: the sequential sieve finds %zu\n", count);
        return 1;
    }
    std::printf("the same as the sequential sieve\n");
    return 0;
}
