/* thread_alloc: a second thread allocates, and moves the break both threads share.
 *
 * build: -pthread
 * Syscalls, in order (main waits for the thread, so the order is fixed):
 *   main    malloc(1000) x 200: the main arena's first brk growth (~132 KiB)
 *   main    pthread_create: mmap of the thread's 8 MiB stack (+ guard page)
 *   thread  malloc(1000): glibc gives the thread its own arena: mmap 128 MiB
 *           PROT_NONE reservation, munmap of its unaligned head and/or tail
 *   thread  malloc(1 MiB) + free: mmap + munmap of 1 MiB + 4096
 *   thread  sbrk(+256 KiB) then sbrk(-64 KiB): brk growth and shrink of the break
 *           the thread shares with main
 *   main    checks the break moved by +192 KiB, then malloc(1000) x 200 more
 *   exit    the thread's stack is kept by glibc's cache (no munmap)
 * Totals depend on the arena alignment, so compare them with strace's, not constants. */
#include <pthread.h>

#include "common.h"

#define BLOCKS 200

static char *thread_break_after;

static void *thread_main(void *arg)
{
    (void)arg;
    char *small = malloc(1000);
    expect(small != NULL, "the thread's small malloc to succeed");
    char *big = malloc(1 * MiB);
    expect(big != NULL, "the thread's 1 MiB malloc to succeed");
    touch(big, 1 * MiB);
    free(big);
    expect(sbrk(256 * KiB) != (void *)-1, "the thread's sbrk growth to succeed");
    expect(sbrk(-64 * KiB) != (void *)-1, "the thread's sbrk shrink to succeed");
    thread_break_after = sbrk(0);
    return small;
}

static void allocate_blocks(void)
{
    for (int i = 0; i < BLOCKS; i++) {
        char *p = malloc(1000);
        expect(p != NULL, "main's malloc to succeed");
        p[0] = (char)i;
    }
}

int main(void)
{
    allocate_blocks();
    char *before = sbrk(0);
    pthread_t t;
    expect(pthread_create(&t, NULL, thread_main, NULL) == 0, "pthread_create to succeed");
    void *small;
    expect(pthread_join(t, &small) == 0, "pthread_join to succeed");
    char *after = sbrk(0);
    expect(after == thread_break_after, "main to see the break the thread left");
    expect(after - before == 192 * KiB, "the shared break to have grown by 192 KiB");
    allocate_blocks();
    say("thread_alloc: the thread moved the shared break by %ld bytes", (long)(after - before));
    return 0;
}
