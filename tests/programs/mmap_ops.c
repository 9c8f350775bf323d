/* mmap_ops: explicit mappings, a partial munmap and mremap growth and shrink.
 *
 * Syscalls made by main, in order (P = 4096):
 *   mmap    16 P anonymous read/write                       -> A
 *   munmap  4 P in the middle of A (A + 6 P)                  partial unmap: A splits in two
 *   munmap  the first 6 P of A
 *   mremap  the last 6 P of A (A + 10 P) grown to 32 P, MREMAP_MAYMOVE   (+26 P)
 *   mremap  that mapping shrunk from 32 P to 8 P                          (-24 P released)
 *   munmap  the 8 P left
 *   mmap    8 P file-backed (read-only, private) of /proc/self/exe, then munmap 8 P
 * Totals of its own: mmap 2 calls 24 P; munmap 4 calls 26 P; mremap 2 calls, 26 P
 * growth, 24 P released. No brk of its own. */
#include <fcntl.h>
#include <sys/mman.h>

#include "common.h"

#define P 4096L

int main(void)
{
    char *a = mmap(NULL, 16 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect(a != MAP_FAILED, "a 16-page mmap to succeed");
    touch(a, 16 * P);
    expect(munmap(a + 6 * P, 4 * P) == 0, "the partial munmap to succeed");
    expect(munmap(a, 6 * P) == 0, "the munmap of the head to succeed");

    char *b = mremap(a + 10 * P, 6 * P, 32 * P, MREMAP_MAYMOVE);
    expect(b != MAP_FAILED, "mremap growth to succeed");
    touch(b, 32 * P);
    char *c = mremap(b, 32 * P, 8 * P, 0);
    expect(c == b, "mremap shrink to stay in place");
    expect(munmap(c, 8 * P) == 0, "the final munmap to succeed");

    int fd = open("/proc/self/exe", O_RDONLY);
    expect(fd >= 0, "to open /proc/self/exe");
    char *f = mmap(NULL, 8 * P, PROT_READ, MAP_PRIVATE, fd, 0);
    expect(f != MAP_FAILED, "a file-backed mmap to succeed");
    expect(munmap(f, 8 * P) == 0, "the file-backed munmap to succeed");
    close(fd);
    say("mmap_ops: mmap, partial munmap, mremap grow and shrink, file mmap");
    return 0;
}
