/* rss_phases: for `heaptrace run -p`: touches 64 MiB (phase_one), writes "ready" on stdout,
 * waits for a byte on stdin (heaptrace attaches meanwhile), touches 64 MiB more (phase_two)
 * and exits. Prints on stderr:
 *   rss_phases: maxrss_kb=N hwm_kb=N */
#include <sys/resource.h>

#include "common.h"

static __attribute__((noinline)) void phase_one(void)
{
    touch(map_anon(64 * MiB, MAP_PRIVATE), 64 * MiB);
}

static __attribute__((noinline)) void phase_two(void)
{
    touch(map_anon(64 * MiB, MAP_PRIVATE), 64 * MiB);
}

int main(void)
{
    phase_one();
    expect(write(1, "ready\n", 6) == 6, "ready to be written");
    char go;
    expect(read(0, &go, 1) == 1, "a byte on stdin");
    phase_two();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    say("rss_phases: maxrss_kb=%ld hwm_kb=%ld", ru.ru_maxrss,
        proc_kb("/proc/self/status", "VmHWM:"));
    return 0;
}
