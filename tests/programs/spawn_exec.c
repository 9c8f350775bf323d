/* spawn_exec: posix_spawn of exec_target, twice: a child sharing the parent's memory
 * until it executes (clone3 or clone with CLONE_VM|CLONE_VFORK, not a thread).
 *
 * Syscalls, in order:
 *   parent  malloc(1000) x 100: brk growth of the parent's heap
 *   parent  posix_spawn: mmap of a small stack for the child, clone(3) with
 *           CLONE_VM|CLONE_VFORK, munmap of that stack after the child has executed
 *   child   execve of exec_target: a fresh address space; exec_target grows its heap
 *           by brk and makes one mmap + munmap of 512 KiB + 4096
 *   parent  waitpid; the second spawn passes "3" so exec_target exits with 3. */
#include <spawn.h>
#include <sys/wait.h>

#include "common.h"

extern char **environ;

static int spawn_and_wait(char *target, char *arg)
{
    char *argv[] = {target, arg, NULL};
    pid_t pid;
    expect(posix_spawn(&pid, target, NULL, NULL, argv, environ) == 0, "posix_spawn to succeed");
    int status;
    expect(waitpid(pid, &status, 0) == pid, "waitpid to succeed");
    expect(WIFEXITED(status), "the child to exit");
    return WEXITSTATUS(status);
}

int main(void)
{
    char target[4200];
    sibling_path(target, sizeof target, "exec_target");
    for (int i = 0; i < 100; i++) {
        char *p = malloc(1000);
        expect(p != NULL, "malloc to succeed");
        p[0] = (char)i;
    }
    expect(spawn_and_wait(target, NULL) == 0, "the first exec_target to exit with 0");
    expect(spawn_and_wait(target, "3") == 3, "the second exec_target to exit with 3");
    say("spawn_exec: two children spawned and done");
    return 0;
}
