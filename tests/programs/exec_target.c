/* exec_target: the program fork_exec and spawn_exec execute; it allocates on its own.
 *
 * Syscalls made by main:
 *   brk     malloc(2000) x 300: about 600 KB of heap in a fresh address space (its
 *           break starts over: exec gives a new one)
 *   mmap    malloc(512 KiB): one mapping of 512 KiB + 4096
 *   munmap  its free
 * Exits with 0, or with argv[1] as a number when one is given. */
#include "common.h"

int main(int argc, char **argv)
{
    for (int i = 0; i < 300; i++) {
        char *p = malloc(2000);
        expect(p != NULL, "malloc to succeed");
        p[0] = (char)i;
    }
    char *big = malloc(512 * KiB);
    expect(big != NULL, "a 512 KiB malloc to succeed");
    touch(big, 512 * KiB);
    free(big);
    return argc > 1 ? atoi(argv[1]) : 0;
}
