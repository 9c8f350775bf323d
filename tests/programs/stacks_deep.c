/* stacks_deep: allocations reached through several named functions, built without
 * frame pointers, from main, from a second thread and from a forked child (issue 3:
 * the unwinder must recover these stacks from DWARF CFI).
 *
 * build: -O2 -fomit-frame-pointer -pthread
 * Every call path (leaf first):
 *   malloc <- inner_malloc <- middle_layer <- outer_layer <- CONTEXT
 *   mmap   <- inner_mmap   <- middle_layer <- outer_layer <- CONTEXT
 * where CONTEXT is main, thread_body (<- start_thread) or child_body (<- main).
 * Sizes tell the contexts apart (P = 4096; malloc above 128 KiB is one mmap of
 * size + 4096):
 *   main         malloc 1 MiB -> mmap 1 MiB + 4096;  inner_mmap 17 P
 *   thread_body  malloc 2 MiB -> mmap 2 MiB + 4096;  inner_mmap 18 P
 *   child_body   malloc 3 MiB -> mmap 3 MiB + 4096;  inner_mmap 19 P
 * plus, in main only, grow_heap <- main: malloc(1000) x 200, brk growth.
 * Nothing is freed. The thread also maps its stack and arena (glibc, not ours). */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "common.h"

/* noclone: -O2 could otherwise rename a specialised copy (inner_mmap.constprop.0).
 * Each function uses its callee's result after the call, so none is a tail call. */
#if defined(__GNUC__) && !defined(__clang__)
#define NOINLINE __attribute__((noinline, noclone))
#else
#define NOINLINE __attribute__((noinline))
#endif

#define P 4096L

NOINLINE void *inner_malloc(size_t size)
{
    char *p = malloc(size);
    expect(p != NULL, "malloc to succeed");
    p[0] = 1;
    return p;
}

NOINLINE void *inner_mmap(size_t size)
{
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p != MAP_FAILED, "mmap to succeed");
    p[0] = 2;
    return p;
}

NOINLINE long middle_layer(size_t malloc_size, size_t mmap_size)
{
    char *a = inner_malloc(malloc_size);
    char *b = inner_mmap(mmap_size);
    a[1] = b[0];
    return a[0] + b[0];
}

NOINLINE long outer_layer(size_t malloc_size, size_t mmap_size)
{
    long r = middle_layer(malloc_size, mmap_size);
    expect(r == 3, "the allocations to be written");
    return r + 1;
}

NOINLINE void *thread_body(void *arg)
{
    long r = outer_layer(2 * MiB, 18 * P);
    *(long *)arg = r;
    return arg;
}

NOINLINE int child_body(void)
{
    long r = outer_layer(3 * MiB, 19 * P);
    return r == 4 ? 0 : 1;
}

NOINLINE long grow_heap(int blocks)
{
    long sum = 0;
    for (int i = 0; i < blocks; i++) {
        char *p = malloc(1000);
        expect(p != NULL, "malloc to succeed");
        p[0] = (char)i;
        sum += p[0];
    }
    return sum;
}

int main(void)
{
    long heap = grow_heap(200);
    long r = outer_layer(1 * MiB, 17 * P);

    long thread_result = 0;
    pthread_t t;
    expect(pthread_create(&t, NULL, thread_body, &thread_result) == 0, "pthread_create");
    expect(pthread_join(t, NULL) == 0, "pthread_join");

    pid_t pid = fork();
    expect(pid >= 0, "fork to succeed");
    if (pid == 0)
        _exit(child_body());
    int status;
    expect(waitpid(pid, &status, 0) == pid, "waitpid to succeed");
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child to exit with 0");
    say("stacks_deep: main %ld, thread %ld, child done (heap sum %ld)", r, thread_result, heap);
    return 0;
}
