// Every operator delete variant (plain, sized, aligned, sized + aligned, nothrow, aligned nothrow;
// delete and delete[]), each on blocks from the matching operator new, ROUNDS times, plus
// new-expressions of over-aligned types. Prints what it allocated and the sampler's counters over
// the loop (zeros without the sampler):
// "news=N aligned_news=M size=S sampled=A sampled_freed=F missed_frees=X dropped=D".
#include <cstdint>
#include <cstdio>
#include <dlfcn.h>
#include <new>
#include <unistd.h>

constexpr int ROUNDS = 2000;
constexpr std::size_t SIZE = 4096;
constexpr std::align_val_t ALIGN{256};

struct alignas(256) Wide {
    char bytes[SIZE];
};
struct alignas(4096) Page {
    char bytes[SIZE];
};

struct Counters {
    std::uint64_t version, mean_bytes, sampled, sampled_freed, dropped, missed_frees;
};

// The block escapes, so the compiler keeps each new/delete pair.
static void *used(void *p) {
    asm volatile("" : : "r"(p) : "memory");
    return p;
}

int main() {
    auto *counters = static_cast<const volatile Counters *>(dlsym(RTLD_DEFAULT, "memleak_sampler_stats"));
    Counters before{}, after{};
    auto read = [&](Counters &into) {
        if (counters) into = Counters{counters->version, counters->mean_bytes, counters->sampled,
                                      counters->sampled_freed, counters->dropped, counters->missed_frees};
    };
    read(before);
    if (counters && before.version < 2) return 2;
    long news = 0, aligned = 0;
    for (int i = 0; i < ROUNDS; i++) {
        ::operator delete(used(::operator new(SIZE)));
        ::operator delete(used(::operator new(SIZE)), SIZE);
        ::operator delete(used(::operator new(SIZE, ALIGN)), ALIGN);
        ::operator delete(used(::operator new(SIZE, ALIGN)), SIZE, ALIGN);
        ::operator delete(used(::operator new(SIZE, std::nothrow)), std::nothrow);
        ::operator delete(used(::operator new(SIZE, ALIGN, std::nothrow)), ALIGN, std::nothrow);
        ::operator delete[](used(::operator new[](SIZE)));
        ::operator delete[](used(::operator new[](SIZE)), SIZE);
        ::operator delete[](used(::operator new[](SIZE, ALIGN)), ALIGN);
        ::operator delete[](used(::operator new[](SIZE, ALIGN)), SIZE, ALIGN);
        ::operator delete[](used(::operator new[](SIZE, std::nothrow)), std::nothrow);
        ::operator delete[](used(::operator new[](SIZE, ALIGN, std::nothrow)), ALIGN, std::nothrow);
        Wide *wide = new Wide;  // aligned new, sized + aligned delete
        used(wide);
        delete wide;
        Page *pages = new Page[2];  // aligned new[], delete[] with the alignment
        used(pages);
        delete[] pages;
        news += 14;
        aligned += 8;
    }
    read(after);
    char line[256];
    int n = std::snprintf(line, sizeof line,
                          "news=%ld aligned_news=%ld size=%zu sampled=%lu sampled_freed=%lu missed_frees=%lu "
                          "dropped=%lu\n",
                          news, aligned, SIZE, (unsigned long)(after.sampled - before.sampled),
                          (unsigned long)(after.sampled_freed - before.sampled_freed),
                          (unsigned long)(after.missed_frees - before.missed_frees),
                          (unsigned long)(after.dropped - before.dropped));
    return write(1, line, std::size_t(n)) == n ? 0 : 1;
}
