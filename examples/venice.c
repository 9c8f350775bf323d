/* venice: the Venice story in miniature. A multi-threaded "server" answers waves of requests:
 * each worker thread allocates a burst of medium-sized buffers (16-96 KiB, under glibc's mmap
 * threshold, so they come from the malloc arenas), keeps one in 32 for a long time (a session,
 * a cache entry) and frees the rest in a shuffled order, not the order it allocated them.
 * After the waves the server goes quiet ("night"). Nothing leaks: what is still allocated at
 * night is the survivors, about 3% of what each wave took.
 *
 * With glibc the freed buffers stay in the arenas: a survivor sits above them, so the top of
 * each arena cannot be trimmed, and RSS stays near the peak. Run with jemalloc
 * (LD_PRELOAD=libjemalloc.so.2) and the freed extents are purged (madvise), so RSS comes back.
 *
 * It prints its RSS (from /proc/self/statm) after each wave and at night, one line each:
 *   rss wave=N kib=K      rss night kib=K sessions=S  */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 4
#define WAVES 4
#define PER_WAVE 256     /* buffers per thread per wave */
#define KEEP_EVERY 32    /* one survivor in KEEP_EVERY */

static pthread_barrier_t wave_start, wave_done;
static size_t sessions_kept[THREADS];

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (f)
        fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned next_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* One request's working buffer: filled, so its pages are really resident. */
static __attribute__((noinline)) char *handle_request(unsigned *seed)
{
    size_t size = (16 + next_rand(seed) % 81) * 1024;
    char *buf = malloc(size);
    if (!buf)
        exit(1);
    memset(buf, 0x5a, size);
    return buf;
}

static __attribute__((noinline)) void *keep_session(char *buf, void **sessions, size_t *n)
{
    sessions[(*n)++] = buf;
    return buf;
}

static __attribute__((noinline)) void *worker(void *arg)
{
    int id = (int)(long)arg;
    unsigned seed = 1234u + (unsigned)id * 7919u;
    void **sessions = calloc(WAVES * PER_WAVE / KEEP_EVERY + 1, sizeof(void *));
    size_t kept = 0;
    char *burst[PER_WAVE];
    for (int wave = 0; wave < WAVES; wave++) {
        pthread_barrier_wait(&wave_start);
        for (int i = 0; i < PER_WAVE; i++)
            burst[i] = handle_request(&seed);
        /* Requests finish in any order: shuffle, then free all but the survivors. */
        for (int i = PER_WAVE - 1; i > 0; i--) {
            int j = (int)(next_rand(&seed) % (unsigned)(i + 1));
            char *t = burst[i];
            burst[i] = burst[j];
            burst[j] = t;
        }
        for (int i = 0; i < PER_WAVE; i++) {
            if (i % KEEP_EVERY == 0)
                keep_session(burst[i], sessions, &kept);
            else
                free(burst[i]);
        }
        pthread_barrier_wait(&wave_done);
    }
    sessions_kept[id] = kept;
    free(sessions);  /* the array only; the sessions themselves stay until exit */
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    pthread_barrier_init(&wave_start, NULL, THREADS + 1);
    pthread_barrier_init(&wave_done, NULL, THREADS + 1);
    for (long t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, worker, (void *)t);
    for (int wave = 0; wave < WAVES; wave++) {
        pthread_barrier_wait(&wave_start);
        pthread_barrier_wait(&wave_done);
        printf("rss wave=%d kib=%ld\n", wave + 1, rss_kib());
        fflush(stdout);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    /* Night: the server idles. jemalloc purges on its decay clock; glibc never does. */
    struct timespec nap = {0, 200 * 1000 * 1000};
    for (int i = 0; i < 5; i++) {
        free(malloc(64));
        nanosleep(&nap, NULL);
    }
    size_t sessions = 0;
    for (int t = 0; t < THREADS; t++)
        sessions += sessions_kept[t];
    printf("rss night kib=%ld sessions=%zu\n", rss_kib(), sessions);
    return 0;
}
