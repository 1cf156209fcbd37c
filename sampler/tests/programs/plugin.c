/* A library that dlopen.c loads and unloads again and again: its constructor allocates its
 * state, its destructor frees it, plugin_leak() returns a block nobody frees, and a thread-local
 * buffer makes glibc allocate dynamic TLS (through malloc) when it is first touched. */
#include <stdlib.h>
#include <string.h>

#define STATE_SIZE (768 << 10)
#define LEAK_SIZE (512 << 10)

static char *state;
static __thread char scratch[256];

__attribute__((constructor)) static void plugin_init(void) {
    state = calloc(1, STATE_SIZE);
}

__attribute__((destructor)) static void plugin_fini(void) {
    free(state);
}

size_t plugin_state_size(void) { return STATE_SIZE; }
size_t plugin_leak_size(void) { return LEAK_SIZE; }

char *plugin_leak(int i) {
    if (!state) return NULL;
    scratch[i % 256] = (char)i;
    char *leak = malloc(LEAK_SIZE);
    if (leak) memset(leak, scratch[i % 256], 64);
    char *copy = strdup("a temporary copy");
    free(copy);
    return leak;
}
