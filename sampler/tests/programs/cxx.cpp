// A C++ program under the sampler: containers, strings, exceptions, threads, aligned new, and
// LEAKS arrays of LEAK_SIZE bytes that are never deleted. Prints a checksum of its work (the same
// with or without the sampler) and "leaks=N leak_size=S".
#include <cstdio>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

constexpr int LEAKS = 20;
char *volatile sink;  // the leaked arrays escape here, so the compiler cannot drop them
constexpr std::size_t LEAK_SIZE = 1 << 20;

struct alignas(128) Wide {
    char bytes[1000];
};

static unsigned long work(unsigned seed) {
    std::map<std::string, std::vector<int>> index;
    unsigned long sum = 0;
    for (unsigned i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        auto key = "key-" + std::to_string(seed % 500);
        auto &values = index[key];
        values.push_back(int(seed % 1000));
        if (values.size() > 50) values.erase(values.begin(), values.begin() + 25);
        try {
            if (seed % 97 == 0) throw std::runtime_error("request " + std::to_string(i) + " failed");
        } catch (const std::exception &e) {
            sum += std::string(e.what()).size();
        }
        auto wide = std::make_unique<Wide>();  // operator new with 128-byte alignment
        wide->bytes[i % 1000] = char(i);
        sum += std::uintptr_t(wide.get()) % alignof(Wide);
    }
    for (auto &entry : index)
        for (int v : entry.second) sum += unsigned(v);
    return sum;
}

int main() {
    unsigned long sums[4] = {};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; t++) threads.emplace_back([t, &sums] { sums[t] = work(t + 1); });
    for (auto &thread : threads) thread.join();
    for (int i = 0; i < LEAKS; i++) {
        char *leak = new char[LEAK_SIZE];
        leak[0] = char(i);
        sink = leak;
    }
    char line[160];
    int n = std::snprintf(line, sizeof line, "checksum=%lu leaks=%d leak_size=%zu\n",
                          sums[0] + sums[1] + sums[2] + sums[3], LEAKS, LEAK_SIZE);
    return write(1, line, std::size_t(n)) == n ? 0 : 1;
}
