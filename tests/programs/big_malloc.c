/* big_malloc: one 64 MiB malloc and its free.
 *
 * Syscalls made by main:
 *   mmap    one anonymous mapping of 64 MiB + 4096 bytes (glibc serves requests above
 *           the 128 KiB mmap threshold with their own mapping: size + header, page
 *           rounded)
 *   munmap  the same mapping, same length, when it is freed
 *   brk     none: nothing here touches the heap (messages go out with write(2)). */
#include "common.h"

#define SIZE (64 * MiB)

int main(void)
{
    char *p = malloc(SIZE);
    expect(p != NULL, "a 64 MiB malloc to succeed");
    touch(p, SIZE);
    free(p);
    say("big_malloc: malloc(%ld) and free", (long)SIZE);
    return 0;
}
