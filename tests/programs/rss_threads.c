/* rss_threads: THREADS threads each malloc COUNT blocks of SIZE bytes and fill them (the
 * story of issue 10: glibc reserves an arena per thread, commits it page by page with
 * mprotect, and the pages become resident when fill_blocks writes them).
 *
 * build: -pthread
 * Usage: rss_threads [THREADS [COUNT [SIZE]]]   (default 4 200000 500)
 * Prints on stderr, for heaptrace's RSS tests to compare with:
 *   rss_threads: maxrss_kb=N hwm_kb=N blocks_bytes=N
 * maxrss_kb is getrusage(RUSAGE_SELF)'s ru_maxrss, hwm_kb /proc/self/status's VmHWM (the
 * same high-water mark, of this image only), blocks_bytes the bytes malloc'd and filled. */
#include <pthread.h>
#include <sys/resource.h>

#include "common.h"

static long count = 200000, size = 500;

static __attribute__((noinline)) void fill_blocks(char **blocks)
{
    for (long i = 0; i < count; i++) {
        blocks[i] = malloc((size_t)size);
        expect(blocks[i] != NULL, "malloc to succeed");
        memset(blocks[i], (int)i, (size_t)size);
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    char **blocks = malloc((size_t)count * sizeof *blocks);
    expect(blocks != NULL, "the block array to be allocated");
    fill_blocks(blocks);
    return blocks;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        count = atol(argv[2]);
    if (argc > 3)
        size = atol(argv[3]);
    expect(threads >= 1 && threads <= 64, "1 to 64 threads");
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        expect(pthread_create(&t[i], NULL, thread_main, NULL) == 0, "pthread_create");
    for (int i = 0; i < threads; i++)
        expect(pthread_join(t[i], NULL) == 0, "pthread_join");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    say("rss_threads: maxrss_kb=%ld hwm_kb=%ld blocks_bytes=%ld", ru.ru_maxrss,
        proc_kb("/proc/self/status", "VmHWM:"), threads * count * size);
    return 0;
}
