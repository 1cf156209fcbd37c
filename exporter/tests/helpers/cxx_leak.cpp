/* A C++ program whose leak goes through libstdc++'s operator new (which keeps
 * no frame pointer), for the ebpf-malloc capture test. Built with
 * g++ -O1 -fno-omit-frame-pointer.
 * usage: cxx_leak ITERATIONS SLEEP_US
 * Waits for a line on stdin, then runs ITERATIONS iterations of
 * serve_client(): leak_session() news a Session and links it into a list
 * nothing frees; scratch_session() news one and deletes it. Sleeps SLEEP_US
 * between iterations, prints "leaked BYTES OBJECTS" (its own count), then
 * waits for stdin to close (so it is traced alive) and exits. */
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

struct Session {
    char state[200];
    Session *next;
};

static Session *sessions;
Session *volatile g_sink;

/* noipa: neither inlined nor cloned under another name. */
__attribute__((noipa)) void leak_session()
{
    Session *session = new Session;
    session->next = sessions;
    sessions = session;
}

__attribute__((noipa)) void scratch_session()
{
    Session *session = new Session;
    g_sink = session; /* escapes: the pair is not elided */
    delete session;
}

__attribute__((noipa)) void serve_client()
{
    leak_session();
    scratch_session();
}

int main(int argc, char **argv)
{
    unsigned long iterations = argc > 1 ? strtoul(argv[1], nullptr, 10) : 100;
    unsigned long sleep_us = argc > 2 ? strtoul(argv[2], nullptr, 10) : 1000;
    char line[64];
    if (!fgets(line, sizeof line, stdin))
        return 1;
    unsigned long objects = 0;
    for (unsigned long i = 0; i < iterations; i++) {
        serve_client();
        objects++;
        usleep(sleep_us);
    }
    printf("leaked %lu %lu\n", objects * sizeof(Session), objects);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        ;
    return 0;
}
