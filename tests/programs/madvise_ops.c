/* madvise_ops: handing pages back without unmapping them, as jemalloc and glibc's trimming do.
 * Syscalls besides start-up (P = 4096):
 *   mmap    1024 P anonymous, all pages touched
 *   madvise MADV_DONTNEED 256 P, MADV_FREE 128 P, MADV_REMOVE 64 P (EINVAL on private anonymous
 *           memory: a failed call), MADV_WILLNEED 32 P (no bytes: not a give-back), and
 *           MADV_DONTNEED on an unaligned address (EINVAL)
 *   munmap  1024 P
 */
#include <sys/mman.h>
#include <string.h>

#include "common.h"

#define P 4096L

int main(void)
{
    char *p = mmap(NULL, 1024 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(p != MAP_FAILED, "mmap to succeed");
    memset(p, 1, 1024 * P);
    expect(madvise(p, 256 * P, MADV_DONTNEED) == 0, "MADV_DONTNEED to succeed");
    expect(madvise(p + 256 * P, 128 * P, MADV_FREE) == 0, "MADV_FREE to succeed");
    expect(madvise(p + 384 * P, 64 * P, MADV_REMOVE) != 0, "MADV_REMOVE to fail here");
    expect(madvise(p + 448 * P, 32 * P, MADV_WILLNEED) == 0, "MADV_WILLNEED to succeed");
    expect(madvise(p + 1, P, MADV_DONTNEED) != 0, "an unaligned madvise to fail");
    expect(munmap(p, 1024 * P) == 0, "munmap to succeed");
    return 0;
}
