/* heavy: an event-heavy target for bench/run.py.
 *
 *   heavy [PAIRS [GROWTHS [PATHS]]]   defaults: 50000 pairs, 20000 growths, 1 path
 *
 * Work, timed by the program itself (CLOCK_MONOTONIC around the two loops only, so
 * start-up and the tracer's attach are not part of it):
 *   PAIRS   x { mmap of (1 + i % 16) pages, write one byte, munmap }, each pair made
 *           through one of PATHS call paths (a power of two: pair i descends log2(PATHS)
 *           levels of left()/right() calls chosen by the bits of i % PATHS), so a recording
 *           has PATHS distinct stacks (bench/scale.py uses 512)
 *   GROWTHS x malloc(4000) with M_TOP_PAD = 0: the main arena grows the break by brk
 *           for almost every call (a page or two at a time); each move of the break is
 *           one brk syscall, counted by watching sbrk(0), which makes no syscall.
 * Prints one JSON line on stdout with the elapsed seconds and the calls it made:
 *   {"elapsed_s": 0.21, "mmap": 50000, "munmap": 50000, "brk": 19609, ...,
 *    "main_started": <CLOCK_REALTIME seconds when main began>}
 * (start-up calls of the loader and libc come on top; bench/run.py takes those from
 * strace's exact count). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096L

struct counts {
    long mmap, munmap, brk, mmap_bytes, brk_bytes;
};

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static volatile long depth_seen; /* written after each call: no tail calls, whole paths */

static __attribute__((noinline)) void map_pair(long i, struct counts *c)
{
    size_t len = (size_t)(1 + i % 16) * PAGE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    p[0] = (char)i;
    if (munmap(p, len) != 0) {
        perror("munmap");
        exit(1);
    }
    c->mmap++;
    c->munmap++;
    c->mmap_bytes += (long)len;
}

static void descend(int levels, long i, struct counts *c);

static __attribute__((noinline)) void left(int levels, long i, struct counts *c)
{
    descend(levels, i, c);
    depth_seen = levels;
}

static __attribute__((noinline)) void right(int levels, long i, struct counts *c)
{
    descend(levels, i, c);
    depth_seen = -levels;
}

static __attribute__((noinline)) void descend(int levels, long i, struct counts *c)
{
    if (levels == 0)
        map_pair(i, c);
    else if ((i >> (levels - 1)) & 1)
        left(levels - 1, i, c);
    else
        right(levels - 1, i, c);
    depth_seen = levels;
}

static void map_pairs(long pairs, long paths, struct counts *c)
{
    int levels = 0;
    while ((1L << levels) < paths)
        levels++;
    for (long i = 0; i < pairs; i++)
        descend(levels, i, c);
}

static void grow_heap(long growths, struct counts *c)
{
    char *before = sbrk(0);
    for (long i = 0; i < growths; i++) {
        char *p = malloc(4000);
        if (p == NULL) {
            perror("malloc");
            exit(1);
        }
        p[0] = (char)i;
        char *after = sbrk(0);
        if (after != before) {
            c->brk++;
            c->brk_bytes += after - before;
            before = after;
        }
    }
}

int main(int argc, char **argv)
{
    /* When main started, for the launcher to see how long a tracer took to let it run. */
    double main_started = clock_s(CLOCK_REALTIME);
    long pairs = argc > 1 ? atol(argv[1]) : 50000;
    long growths = argc > 2 ? atol(argv[2]) : 20000;
    long paths = argc > 3 ? atol(argv[3]) : 1;
    struct counts c = {0};
    mallopt(M_TOP_PAD, 0);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    free(malloc(1)); /* set the arena up before the clock starts */
    double start = now();
    map_pairs(pairs, paths, &c);
    grow_heap(growths, &c);
    double elapsed = now() - start;
    printf("{\"elapsed_s\": %.6f, \"mmap\": %ld, \"munmap\": %ld, \"brk\": %ld, "
           "\"mremap\": 0, \"mmap_bytes\": %ld, \"brk_bytes\": %ld, \"main_started\": %.6f}\n",
           elapsed, c.mmap, c.munmap, c.brk, c.mmap_bytes, c.brk_bytes, main_started);
    return 0;
}
