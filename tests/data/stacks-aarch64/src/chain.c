/* Heap growth through named, non-inlined functions, for aarch64 (built -O2, with and without
 * frame pointers): brk from main's chain, mmap directly and inside malloc, and a second
 * thread, so the unwinder meets both outermost frames (_start, a thread's clone). The same
 * functions as ../../stacks/src/chain.c, without the forked child and the signal handler
 * (qemu-user's gdbstub follows no child, and gdb cannot unwind qemu's signal trampoline). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NOINLINE __attribute__((noinline))
static volatile char *sink;

NOINLINE void *grow_heap(size_t n) { char *p = malloc(n); memset(p, 1, n); sink = p; return p; }
NOINLINE void *level3(size_t n) { void *p = grow_heap(n); __asm__ volatile("" ::: "memory"); return p; }
NOINLINE void *level2(size_t n) { void *p = level3(n + 16); __asm__ volatile("" ::: "memory"); return p; }
NOINLINE void *level1(size_t n) { void *p = level2(n + 16); __asm__ volatile("" ::: "memory"); return p; }

NOINLINE void *map_pages(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sink = p;
    return p;
}
NOINLINE void *map_chain(size_t n) { void *p = map_pages(n); __asm__ volatile("" ::: "memory"); return p; }

NOINLINE void *thread_work(size_t n) { void *p = level1(n); __asm__ volatile("" ::: "memory"); return p; }
NOINLINE void *thread_main(void *arg) { (void)arg; thread_work(300000); return NULL; }

int main(void) {
    for (int i = 0; i < 4; i++) level1(100000);  /* below the mmap threshold: brk */
    map_chain(4 << 20);
    level1(1 << 20);                              /* above the threshold: mmap in malloc */
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    return 0;
}
