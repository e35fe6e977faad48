/* Counts the heap allocations of the process it is preloaded into (LD_PRELOAD), for
 * bench/per_request.py: malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign call
 * glibc's own implementations after adding one to a counter. SIGUSR2 writes the count, in
 * decimal, to the file named by ALLOC_COUNT_FILE (open, write and close are async-signal-safe).
 * Allocations are deterministic for a given binary and request, unlike CPU time on a shared
 * machine: a change's effect shows through the noise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong allocations;

void *malloc(size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }
int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = memalign(alignment, size);
    if (pointer == NULL && size != 0) return ENOMEM;
    *result = pointer;
    return 0;
}

static void report(int signal) {
    (void)signal;
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (path == NULL) return;
    char text[32];
    int length = 0;
    unsigned long value = atomic_load(&allocations);
    char digits[32];
    do { digits[length++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
    for (int i = 0; i < length; i++) text[i] = digits[length - 1 - i];
    text[length++] = '\n';
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, text, (size_t)length);
        (void)written;
        close(fd);
    }
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
