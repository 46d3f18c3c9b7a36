// word_count: the ten most frequent words of a text file, counted by a farm
// of four workers in a csp::pipeline.
//
//   word_count FILE
//
//   reader --chunks of lines--> count * 4 --counts per chunk--> tally
//
// The reader sends the file in chunks of 256 lines; four copies of the
// counting stage share the channels in and out (a farm: whichever is free
// takes the next chunk), each turning a chunk into its words' counts; the
// tally adds the counts up as they come, in whatever order, and returns the
// total. A word is a run of ASCII letters, lower-cased. Each stage ends by
// the retire rule: the reader retires when the file is read, the workers
// when their input is drained, the tally when every worker has retired.
//
// Prints the number of words and of distinct words, then the top ten, one
// "count word" per line (most frequent first; equal counts alphabetically).
#include <csp/csp.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

using Counts = std::map<std::string, long>;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    std::ifstream file(argv[1]);
    if (!file) {
        std::fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[1]);
        return 1;
    }

    auto reader = csp::process("reader", [&file](csp::ChannelOut<std::vector<std::string>> out) {
        std::vector<std::string> chunk;
        for (std::string line; std::getline(file, line);) {
            chunk.push_back(std::move(line));
            if (chunk.size() == 256) out(std::exchange(chunk, {}));
        }
        if (!chunk.empty()) out(std::move(chunk));
    });  // (leaving the body retires `out`)
    auto count = csp::stage([](std::vector<std::string> lines) {
        Counts counts;
        for (const std::string& line : lines) {
            std::string word;
            for (char c : line + ' ') {
                if (std::isalpha(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 128) {
                    word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                } else if (!word.empty()) {
                    ++counts[std::exchange(word, {})];
                }
            }
        }
        return counts;
    });
    auto tally = csp::process("tally", [](csp::ChannelIn<Counts> in) {
        Counts total;
        try {
            for (;;) {
                for (const auto& [word, n] : in()) total[word] += n;
            }
        } catch (const csp::ChannelRetireException&) {
            // every worker has retired: all chunks are counted
        }
        return total;
    });

    const Counts total = csp::pipeline(reader, count * 4, tally);

    std::vector<std::pair<std::string, long>> words(total.begin(), total.end());
    std::stable_sort(words.begin(), words.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    long all = 0;
    for (const auto& w : words) all += w.second;
    std::printf("%ld words, %zu distinct\n", all, words.size());
    for (std::size_t i = 0; i < words.size() && i < 10; ++i) std::printf("%ld %s\n", words[i].second, words[i].first.c_str());
}
