/* fork_exec: a forked child allocates, then executes another program that allocates.
 *
 * Syscalls, in order (the parent waits for the child before going on):
 *   parent  malloc(1000) x 300: brk growth of the parent's heap
 *   parent  fork (clone without CLONE_VM: the child gets a copy of the address space
 *           and inherits the parent's break)
 *   child   sbrk(+128 KiB): brk growth counted from the inherited break
 *   child   malloc(3 MiB) + free: mmap + munmap of 3 MiB + 4096
 *   child   execve of exec_target (next to this program): a fresh address space whose
 *           break starts over; exec_target then grows its heap by brk and makes one
 *           mmap + munmap of 512 KiB + 4096 (see exec_target.c)
 *   parent  waitpid, then sbrk(+64 KiB): its own break, not moved by the child. */
#include <sys/wait.h>

#include "common.h"

static void child(const char *target)
{
    expect(sbrk(128 * KiB) != (void *)-1, "the child's sbrk to succeed");
    char *big = malloc(3 * MiB);
    expect(big != NULL, "the child's 3 MiB malloc to succeed");
    touch(big, 3 * MiB);
    free(big);
    execl(target, target, (char *)NULL);
    say("fork_exec: cannot execute %s", target);
    _exit(127);
}

int main(void)
{
    char target[4200];
    sibling_path(target, sizeof target, "exec_target");
    for (int i = 0; i < 300; i++) {
        char *p = malloc(1000);
        expect(p != NULL, "the parent's malloc to succeed");
        p[0] = (char)i;
    }
    char *before = sbrk(0);
    pid_t pid = fork();
    expect(pid >= 0, "fork to succeed");
    if (pid == 0)
        child(target);
    int status;
    expect(waitpid(pid, &status, 0) == pid, "waitpid to succeed");
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child to exit with 0");
    expect(sbrk(0) == before, "the parent's break not to move with the child's");
    expect(sbrk(64 * KiB) != (void *)-1, "the parent's sbrk to succeed");
    say("fork_exec: child and %s done", target);
    return 0;
}
