/* brk_loop: grows the heap with a malloc loop.
 *
 * Syscalls made by main (besides the loader's and libc's start-up mmaps):
 *   brk    malloc(1000) x 4000, never freed: about 4 MB of heap taken by glibc in
 *          steps of ~132 KiB (the main arena grows by brk; the blocks stay below
 *          the 128 KiB mmap threshold), so some thirty brk calls, all growing.
 * No mmap, munmap or mremap of its own. */
#include "common.h"

#define BLOCKS 4000
#define BLOCK_SIZE 1000

int main(void)
{
    static char *blocks[BLOCKS];
    char *start = sbrk(0);
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        expect(blocks[i] != NULL, "malloc to succeed");
        memset(blocks[i], i & 0xff, BLOCK_SIZE);
    }
    char *end = sbrk(0);
    expect(end - start >= (long)BLOCKS * BLOCK_SIZE, "the break to grow by the blocks");
    say("brk_loop: %d blocks of %d bytes, break grew by %ld bytes",
        BLOCKS, BLOCK_SIZE, (long)(end - start));
    return 0;
}
