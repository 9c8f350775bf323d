/* faults: a page-fault-heavy target for bench/faults.py (the story of issue 10 in small).
 *
 *   faults [THREADS [BLOCKS]]      defaults: 4 threads, 100000 blocks each
 *
 * Each thread mallocs BLOCKS blocks of 500 bytes and fills them: glibc commits its arena a
 * page at a time and every page becomes resident on first touch (one page fault each, about
 * 50,000 per thread by default). Timed by the program itself, from before the threads start
 * to after they are joined (start-up and the tracer's set-up are not in it). Prints one JSON
 * line on stdout:
 *   {"elapsed_s": 0.31, "threads": 4, "blocks": 100000, "block_bytes": 512,
 *    "main_started": <CLOCK_REALTIME seconds when main began>}
 * block_bytes is glibc's chunk for a 500-byte malloc (500 + 8 of header, 16-aligned). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long blocks = 100000;

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static __attribute__((noinline)) void fill_blocks(char **out)
{
    for (long i = 0; i < blocks; i++) {
        out[i] = malloc(500);
        if (out[i] == NULL) {
            perror("malloc");
            exit(1);
        }
        memset(out[i], (int)i, 500);
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    char **out = malloc((size_t)blocks * sizeof *out);
    if (out == NULL) {
        perror("malloc");
        exit(1);
    }
    fill_blocks(out);
    return out;
}

int main(int argc, char **argv)
{
    double main_started = clock_s(CLOCK_REALTIME);
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        blocks = atol(argv[2]);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "faults: 1 to 64 threads\n");
        return 2;
    }
    pthread_t t[64];
    double start = clock_s(CLOCK_MONOTONIC);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double elapsed = clock_s(CLOCK_MONOTONIC) - start;
    printf("{\"elapsed_s\": %.6f, \"threads\": %d, \"blocks\": %ld, \"block_bytes\": 512, "
           "\"main_started\": %.6f}\n", elapsed, threads, blocks, main_started);
    return 0;
}
