/* fork_many: N short-lived children, one after another (a build, a shell script in a loop).
 *
 * Usage: fork_many N [exec]
 * Each child, in order:
 *   sbrk(+64 KiB), then sbrk(-32 KiB): brk growth and shrink of its inherited break
 *   mmap of 256 KiB + munmap of it (anonymous, explicit: no malloc)
 *   with `exec`: execve of exec_target (next to this program), which grows a fresh heap by
 *   brk and makes one mmap + munmap of 512 KiB + 4096 (see exec_target.c); otherwise _exit(0).
 * The parent waits for each child before forking the next, and says every 100 children
 * `fork_many: I children` on stderr (how far it got, for bench/recorder.py). */
#include <sys/wait.h>

#include "common.h"

static void child(const char *target)
{
    expect(sbrk(64 * KiB) != (void *)-1, "the child's sbrk to grow");
    expect(sbrk(-32 * KiB) != (void *)-1, "the child's sbrk to shrink");
    char *p = map_anon(256 * KiB, MAP_PRIVATE);
    touch(p, 256 * KiB);
    expect(munmap(p, 256 * KiB) == 0, "the child's munmap to succeed");
    if (target != NULL) {
        execl(target, target, (char *)NULL);
        _exit(127);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    expect(argc >= 2, "fork_many N [exec]");
    long n = strtol(argv[1], NULL, 10);
    char target[4200];
    int exec = argc > 2 && strcmp(argv[2], "exec") == 0;
    if (exec)
        sibling_path(target, sizeof target, "exec_target");
    for (long i = 1; i <= n; i++) {
        pid_t pid = fork();
        expect(pid >= 0, "fork to succeed");
        if (pid == 0)
            child(exec ? target : NULL);
        int status;
        expect(waitpid(pid, &status, 0) == pid, "waitpid to succeed");
        expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child to exit with 0");
        if (i % 100 == 0)
            say("fork_many: %ld children", i);
    }
    return 0;
}
