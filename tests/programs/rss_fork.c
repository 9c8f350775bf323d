/* rss_fork: the parent touches 32 MiB (parent_touch), then forks; the child touches 48 MiB
 * more (child_touch) and exits; the parent waits. The child starts with the parent's pages
 * (fork shares them: its RSS, not pages it touched). Prints on stderr, child first:
 *   rss_fork: who=child hwm_kb=N
 *   rss_fork: who=parent hwm_kb=N
 * (VmHWM of each process's own address space). */
#include <sys/wait.h>

#include "common.h"

static __attribute__((noinline)) void parent_touch(void)
{
    touch(map_anon(32 * MiB, MAP_PRIVATE), 32 * MiB);
}

static __attribute__((noinline)) void child_touch(void)
{
    touch(map_anon(48 * MiB, MAP_PRIVATE), 48 * MiB);
}

int main(void)
{
    parent_touch();
    pid_t child = fork();
    expect(child >= 0, "fork to succeed");
    if (child == 0) {
        child_touch();
        say("rss_fork: who=child hwm_kb=%ld", proc_kb("/proc/self/status", "VmHWM:"));
        _exit(0);
    }
    int status;
    expect(waitpid(child, &status, 0) == child && WIFEXITED(status), "the child to exit");
    say("rss_fork: who=parent hwm_kb=%ld", proc_kb("/proc/self/status", "VmHWM:"));
    return 0;
}
