/* Faults in two regions for the page-fault region test: waits for one byte on
 * stdin, moves the program break up and touches N pages of the brk heap
 * (in touch_heap_pages), maps N anonymous pages and touches them (in
 * touch_anon_pages), writes one byte to stdout, and stays alive (so its maps
 * can be read) until stdin closes. Built with frame pointers, so that the
 * kernel can walk its stacks. */
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) void touch_heap_pages(char *p, long pages, long page) {
    for (long i = 0; i < pages; i++) p[i * page] = 1;
}

__attribute__((noinline)) void touch_anon_pages(char *p, long pages, long page) {
    for (long i = 0; i < pages; i++) p[i * page] = 1;
}

int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 1000;
    long page = sysconf(_SC_PAGESIZE);
    char go;
    if (read(0, &go, 1) != 1) return 2;
    long start = syscall(SYS_brk, 0L);
    long heap_start = (start + page - 1) / page * page;
    if (syscall(SYS_brk, heap_start + pages * page) != heap_start + pages * page) return 3;
    touch_heap_pages((char *)heap_start, pages, page);
    char *anon = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED) return 4;
    touch_anon_pages(anon, pages, page);
    if (write(1, "d", 1) != 1) return 5;
    while (read(0, &go, 1) > 0) {
    }
    return 0;
}
