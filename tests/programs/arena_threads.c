/* arena_threads: four threads each malloc 200,000 blocks of 500 bytes and keep them.
 *
 * build: -pthread
 * Each thread gets a glibc arena: a 64 MiB PROT_NONE reservation (mmap, then munmap of the
 * unaligned head and tail), committed by mprotect in steps as the arena's top grows, and a
 * thread stack (an mmap with a PROT_NONE guard, the rest made accessible by mprotect).
 * What the threads commit (~443 MB) is growth; what glibc reserved (~906 MB) is not. The
 * threads start one after another (each joined before the next), so the calls come in the
 * same order on every run. */
#include <pthread.h>

#include "common.h"

#define THREADS 4
#define BLOCKS 200000
#define BLOCK 500

static void *fill(void *arg)
{
    (void)arg;
    char *last = NULL;
    for (int i = 0; i < BLOCKS; i++) {
        last = malloc(BLOCK);
        expect(last != NULL, "a block");
        last[0] = 1;
    }
    return last;
}

int main(void)
{
    for (int t = 0; t < THREADS; t++) {
        pthread_t thread;
        expect(pthread_create(&thread, NULL, fill, NULL) == 0, "a thread");
        expect(pthread_join(thread, NULL) == 0, "the thread to end");
    }
    return 0;
}
