/* Heap growth through named, non-inlined functions (built -O2 -fomit-frame-pointer):
 * brk from main's chain, mmap directly, a second thread, a forked child and a signal
 * handler, so the unwinder meets every kind of outermost frame. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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

NOINLINE void child_work(void) { for (int i = 0; i < 4; i++) level1(100000); }

NOINLINE void on_signal(int sig) { (void)sig; map_chain(1 << 20); }
NOINLINE void raise_it(void) { raise(SIGUSR1); __asm__ volatile("" ::: "memory"); }

int main(void) {
    for (int i = 0; i < 4; i++) level1(100000);  /* below the mmap threshold: brk */
    map_chain(4 << 20);
    level1(1 << 20);                              /* above the threshold: mmap in malloc */
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    signal(SIGUSR1, on_signal);
    raise_it();
    pid_t pid = fork();
    if (pid == 0) { child_work(); _exit(0); }
    waitpid(pid, NULL, 0);
    return 0;
}
