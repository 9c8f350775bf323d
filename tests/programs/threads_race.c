/* threads_race: four threads map and unmap at the same time (the tracer must pair each
 * thread's syscall entries and exits, however they interleave).
 *
 * build: -pthread
 * Syscalls (P = 4096; no malloc in the threads, so no arenas):
 *   main     pthread_create x 4: four mmaps of 8 MiB + 4096 (stacks); the threads wait
 *            on a barrier until all four exist, so no stack is reused from the cache
 *   thread   200 x { mmap (1 + i % 8) P anonymous, write a byte, munmap it }:
 *            per thread 200 mmap and 200 munmap of 900 P each way (i from 0 to 199)
 *   main     pthread_join x 4
 * Totals of its own: mmap 804 calls, munmap 800 calls of 3600 P. */
#include <pthread.h>
#include <sys/mman.h>

#include "common.h"

#define THREADS 4
#define ROUNDS 200
#define P 4096L

static pthread_barrier_t all_started;

static void *churn(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&all_started);
    for (int i = 0; i < ROUNDS; i++) {
        size_t len = (size_t)(1 + i % 8) * P;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        expect(p != MAP_FAILED, "mmap to succeed");
        p[0] = (char)i;
        expect(munmap(p, len) == 0, "munmap to succeed");
    }
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    expect(pthread_barrier_init(&all_started, NULL, THREADS) == 0, "a barrier");
    for (int i = 0; i < THREADS; i++)
        expect(pthread_create(&t[i], NULL, churn, NULL) == 0, "pthread_create to succeed");
    for (int i = 0; i < THREADS; i++)
        expect(pthread_join(t[i], NULL) == 0, "pthread_join to succeed");
    say("threads_race: %d threads x %d mmap/munmap pairs", THREADS, ROUNDS);
    return 0;
}
