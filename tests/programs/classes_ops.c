/* classes_ops: one mapping of each class, and every way a page changes class.
 *
 * build: -pthread
 * Syscalls, in order:
 *   mmap    16 MiB PROT_NONE private anonymous (reserved)
 *   mprotect 1 MiB of it read-write (committed: 1 MiB), then 1 MiB again over the same
 *           pages plus 1 MiB more (committed: 1 MiB, the rest already was)
 *   mmap    MAP_FIXED read-write over 512 KiB further in the reservation (committed)
 *   mprotect the first 256 KiB back to PROT_NONE (released: 256 KiB)
 *   mprotect 64 KiB of a file mapping (nothing: file pages are neither)
 *   mmap    a file (the program itself, 64 KiB, read-only), a 1 MiB shared anonymous mapping,
 *           a 1 MiB private anonymous one (committed)
 *   madvise MADV_DONTNEED 256 KiB of the committed mapping, then the pages are touched again
 *   mremap  the committed mapping grown to 2 MiB (committed growth), the shared one to 2 MiB
 *           (shared growth)
 *   pthread_create/join: a thread stack (reserved, then committed by mprotect but its guard)
 *   fork    the child commits 1 MiB more of the inherited reservation by mprotect, then
 *           executes exec_target (a fresh address space); the parent waits */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "common.h"

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    (void)argc;
    char *res = mmap(NULL, 16 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    expect(res != MAP_FAILED, "the reservation");
    expect(mprotect(res, 1 * MiB, PROT_READ | PROT_WRITE) == 0, "a commit");
    expect(mprotect(res, 2 * MiB, PROT_READ | PROT_WRITE) == 0, "a commit over a commit");
    char *fixed = mmap(res + 4 * MiB, 512 * KiB, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    expect(fixed == res + 4 * MiB, "MAP_FIXED in the reservation");
    expect(mprotect(res, 256 * KiB, PROT_NONE) == 0, "committed made PROT_NONE again");

    int fd = open(argv[0], O_RDONLY);
    expect(fd >= 0, "the program's file");
    char *file = mmap(NULL, 64 * KiB, PROT_READ, MAP_PRIVATE, fd, 0);
    expect(file != MAP_FAILED, "a file mapping");
    expect(mprotect(file, 64 * KiB, PROT_READ | PROT_WRITE) == 0, "a file page's mprotect");
    char *shared = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
    expect(shared != MAP_FAILED, "a shared mapping");
    char *anon = mmap(NULL, 1 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    expect(anon != MAP_FAILED, "a committed mapping");
    touch(anon, 1 * MiB);
    expect(madvise(anon, 256 * KiB, MADV_DONTNEED) == 0, "pages given back");
    touch(anon, 256 * KiB);
    anon = mremap(anon, 1 * MiB, 2 * MiB, MREMAP_MAYMOVE);
    expect(anon != MAP_FAILED, "committed growth by mremap");
    shared = mremap(shared, 1 * MiB, 2 * MiB, MREMAP_MAYMOVE);
    expect(shared != MAP_FAILED, "shared growth by mremap");

    pthread_t thread;
    expect(pthread_create(&thread, NULL, nothing, NULL) == 0, "a thread");
    expect(pthread_join(thread, NULL) == 0, "the thread to end");

    pid_t child = fork();
    expect(child >= 0, "a child");
    if (child == 0) {
        expect(mprotect(res + 8 * MiB, 1 * MiB, PROT_READ | PROT_WRITE) == 0,
               "the child's commit in the inherited reservation");
        char target[4096];
        size_t n = strlen(argv[0]);
        expect(n < sizeof target - 16, "a short path");
        memcpy(target, argv[0], n + 1);
        strcpy(strrchr(target, '/') + 1, "exec_target");
        execl(target, "exec_target", (char *)NULL);
        _exit(71);
    }
    int status = 0;
    expect(waitpid(child, &status, 0) == child && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0, "the child to succeed");
    return 0;
}
