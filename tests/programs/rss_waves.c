/* rss_waves: a Venice-like server for the RSS tests. THREADS worker threads answer WAVES waves
 * of requests; each request mallocs a 16-96 KiB buffer (under glibc's mmap threshold: from the
 * arenas) and fills it; after a wave one buffer in KEEP_EVERY survives (a session) and the rest
 * are freed in a shuffled order. Then the server idles ("night") while still allocating a
 * little, so that jemalloc's decay clock ticks and it purges (madvise) what was freed; glibc
 * keeps its arenas' pages (a survivor sits above the freed chunks: nothing to trim).
 *
 * build: -pthread
 * Prints on stderr, CLOCK_MONOTONIC (bpf_ktime_get_ns's clock) times in ns:
 *   rss_waves: wave=N ns=T rss_kb=K              after each wave
 *   rss_waves: night ns=T rss_kb=K maxrss_kb=M hwm_kb=H sessions=S
 * rss_kb is /proc/self/status's VmRSS, maxrss_kb getrusage's ru_maxrss, hwm_kb VmHWM. */
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>

#include "common.h"

#define THREADS 4
#define WAVES 4
#define PER_WAVE 256
#define KEEP_EVERY 32

static pthread_barrier_t wave_start, wave_done;
static long kept_by[THREADS];

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static unsigned next_rand(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static __attribute__((noinline)) char *answer(unsigned *seed)
{
    size_t size = (16 + next_rand(seed) % 81) * KiB;
    char *buf = malloc(size);
    expect(buf != NULL, "malloc to succeed");
    memset(buf, 0x5a, size);
    return buf;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned seed = 4321u + (unsigned)id * 7919u;
    char *burst[PER_WAVE];
    for (int wave = 0; wave < WAVES; wave++) {
        pthread_barrier_wait(&wave_start);
        for (int i = 0; i < PER_WAVE; i++)
            burst[i] = answer(&seed);
        for (int i = PER_WAVE - 1; i > 0; i--) { /* requests end in any order */
            int j = (int)(next_rand(&seed) % (unsigned)(i + 1));
            char *t = burst[i];
            burst[i] = burst[j];
            burst[j] = t;
        }
        for (int i = 0; i < PER_WAVE; i++) {
            if (i % KEEP_EVERY == 0)
                kept_by[id]++; /* a session: kept until exit */
            else
                free(burst[i]);
        }
        pthread_barrier_wait(&wave_done);
    }
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&wave_start, NULL, THREADS + 1);
    pthread_barrier_init(&wave_done, NULL, THREADS + 1);
    for (long i = 0; i < THREADS; i++)
        expect(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
    for (int wave = 0; wave < WAVES; wave++) {
        pthread_barrier_wait(&wave_start);
        pthread_barrier_wait(&wave_done);
        say("rss_waves: wave=%d ns=%ld rss_kb=%ld", wave + 1, now_ns(),
            proc_kb("/proc/self/status", "VmRSS:"));
    }
    for (int i = 0; i < THREADS; i++)
        expect(pthread_join(t[i], NULL) == 0, "pthread_join");
    struct timespec nap = {0, 100 * 1000 * 1000};
    for (int i = 0; i < 12; i++) { /* night: a little work, so jemalloc's decay runs */
        free(malloc(64));
        nanosleep(&nap, NULL);
    }
    long sessions = 0;
    for (int i = 0; i < THREADS; i++)
        sessions += kept_by[i];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    say("rss_waves: night ns=%ld rss_kb=%ld maxrss_kb=%ld hwm_kb=%ld sessions=%ld", now_ns(),
        proc_kb("/proc/self/status", "VmRSS:"), ru.ru_maxrss,
        proc_kb("/proc/self/status", "VmHWM:"), sessions);
    return 0;
}
