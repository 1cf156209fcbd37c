/* Loads and unloads a plugin library (path in argv[1]) N times (argv[2], default 100), calling
 * it each time; also dlopens a library that does not exist (dlerror allocates) and libz.
 * Prints "iterations=N leak_size=S state_size=S". */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int n = argc > 2 ? atoi(argv[2]) : 100;
    size_t leak_size = 0, state_size = 0;
    for (int i = 0; i < n; i++) {
        void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!plugin) return 3;
        char *(*leak)(int) = (char *(*)(int))dlsym(plugin, "plugin_leak");
        size_t (*leak_bytes)(void) = (size_t (*)(void))dlsym(plugin, "plugin_leak_size");
        size_t (*state_bytes)(void) = (size_t (*)(void))dlsym(plugin, "plugin_state_size");
        if (!leak || !leak_bytes || !state_bytes || !leak(i)) return 4;
        leak_size = leak_bytes();
        state_size = state_bytes();
        if (dlclose(plugin) != 0) return 5;
        if (dlopen("/nonexistent/libmissing.so", RTLD_NOW) != NULL || dlerror() == NULL) return 6;
        void *z = dlopen("libz.so.1", RTLD_NOW);
        if (z) dlclose(z);
    }
    char line[128];
    int length = snprintf(line, sizeof line, "iterations=%d leak_size=%zu state_size=%zu\n", n, leak_size, state_size);
    write(1, line, (size_t)length);
    return 0;
}
