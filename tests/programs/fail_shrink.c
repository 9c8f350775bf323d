/* fail_shrink: failing calls of every kind, and a heap that shrinks.
 *
 * Syscalls made by main, in order (P = 4096):
 *   brk     sbrk(0), sbrk(+256 KiB): growth (glibc's first sbrk asks the kernel once
 *           with brk(NULL) for the current break)
 *   brk     sbrk(-64 KiB) then sbrk(-32 KiB): two shrinks, 96 KiB released
 *   brk     brk(break + 2^46): refused; the kernel answers the unchanged break (the
 *           syscall itself never returns -1: a failed brk is one whose answer is not
 *           the address asked for)
 *   mmap    length 2^50 bytes: -1 ENOMEM
 *   mmap    4 P anonymous: succeeds
 *   munmap  an address not page aligned: -1 EINVAL
 *   mmap    1 P PROT_NONE, then munmap 1 P: a hole where nothing is mapped
 *   mremap  old_len 4 P at the hole: -1 EFAULT
 *   mremap  the 4 P mapping to 2^50 bytes: -1 EINVAL (larger than the address space)
 *   munmap  the 4 P mapping: succeeds
 * Its own calls: brk 5 (1 failed), mmap 3 (1 failed), munmap 3 (1 failed), mremap 2
 * (both failed). */
#include <errno.h>
#include <sys/mman.h>

#include "common.h"

#define P 4096L
#define HUGE (1L << 50)

int main(void)
{
    char *start = sbrk(0);
    expect(sbrk(256 * KiB) == start, "sbrk growth to succeed");
    expect(sbrk(-64 * KiB) != (void *)-1, "the first sbrk shrink to succeed");
    expect(sbrk(-32 * KiB) != (void *)-1, "the second sbrk shrink to succeed");
    char *now = sbrk(0);
    expect(now - start == 160 * KiB, "the break to have moved by 160 KiB");
    expect(brk(now + (1L << 46)) == -1, "a brk past the address space to fail");
    expect(sbrk(0) == now, "a failed brk to leave the break where it was");

    void *huge = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(huge == MAP_FAILED && errno == ENOMEM, "a 2^50-byte mmap to fail with ENOMEM");
    char *a = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(a != MAP_FAILED, "a 4-page mmap to succeed");
    expect(munmap(a + 1, P) == -1 && errno == EINVAL, "an unaligned munmap to fail with EINVAL");
    char *hole = mmap(NULL, P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(hole != MAP_FAILED, "a placeholder mmap to succeed");
    expect(munmap(hole, P) == 0, "the placeholder munmap to succeed");
    expect(mremap(hole, 4 * P, 8 * P, MREMAP_MAYMOVE) == MAP_FAILED && errno == EFAULT,
           "an mremap of an unmapped range to fail with EFAULT");
    expect(mremap(a, 4 * P, HUGE, 0) == MAP_FAILED && errno == EINVAL,
           "an mremap to 2^50 bytes to fail with EINVAL");
    expect(munmap(a, 4 * P) == 0, "the final munmap to succeed");
    say("fail_shrink: failures of brk, mmap, munmap and mremap, and two brk shrinks");
    return 0;
}
