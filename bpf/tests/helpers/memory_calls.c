/* The brk/mmap/munmap/mremap calls of the memory_syscalls test, with known
 * sizes. Waits for one byte on stdin (so the test can move it into a cgroup
 * first), makes the calls, and exits; with the argument `stay`, exits only
 * when stdin closes. Raw syscalls, so that glibc adds none. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static void *map(long len, int flags, int fd) {
    return (void *)syscall(SYS_mmap, 0L, len, (long)(PROT_READ | PROT_WRITE), (long)flags, (long)fd, 0L);
}

int main(int argc, char **argv) {
    char go;
    if (read(0, &go, 1) != 1) return 2;
    const long anon[] = {4096, 100000, 3 << 20};
    void *maps[3];
    for (int i = 0; i < 3; i++) {
        maps[i] = map(anon[i], MAP_PRIVATE | MAP_ANONYMOUS, -1);
        if (maps[i] == MAP_FAILED) return 3;
    }
    for (int i = 0; i < 3; i++) syscall(SYS_munmap, maps[i], anon[i]);

    int fd = open(argv[0], O_RDONLY);
    void *file = (void *)syscall(SYS_mmap, 0L, 8192L, (long)PROT_READ, (long)MAP_PRIVATE, (long)fd, 0L);
    if (file == MAP_FAILED) return 4;
    syscall(SYS_munmap, file, 8192L);

    void *small = map(65536, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    void *grown = (void *)syscall(SYS_mremap, small, 65536L, 196608L, (long)MREMAP_MAYMOVE, 0L);
    if (grown == MAP_FAILED) return 5;
    syscall(SYS_munmap, grown, 196608L);

    /* The break: up 256 KiB, up 512 KiB more, down 256 KiB. */
    long start = syscall(SYS_brk, 0L);
    syscall(SYS_brk, start + (256 << 10));
    syscall(SYS_brk, start + (768 << 10));
    syscall(SYS_brk, start + (512 << 10));
    /* A failing munmap (unaligned address): counted as failed, not as bytes. */
    syscall(SYS_munmap, (char *)start + 1, 4096L);
    if (argc > 1 && strcmp(argv[1], "stay") == 0)
        while (read(0, &go, 1) > 0) {
        }
    return 0;
}
