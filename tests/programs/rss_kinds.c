/* rss_kinds: memory that becomes resident in each way heaptrace tells apart, each in its own
 * function, in this order:
 *   touch_anon     64 MiB of private anonymous memory written page by page (user faults)
 *   read_zero      16 MiB read from /dev/zero into a fresh, never touched buffer (the kernel
 *                  writes the pages inside read(2): growth in a syscall)
 *   read_file      FILE (argv[1]) mapped and read, one page in STRIDE (argv[2], default 1:
 *                  every page; the kernel maps up to 64 KiB around each page read)
 *   touch_shared   8 MiB of MAP_SHARED anonymous memory written (shmem)
 *   touch_huge     32 MiB, 2 MiB-aligned, madvise(MADV_HUGEPAGE), one write per 2 MiB
 *                  (transparent huge pages, where the kernel has them)
 * Nothing is freed. Prints on stderr:
 *   rss_kinds: maxrss_kb=N hwm_kb=N file_bytes=N huge_kb=N anon_kb=N file_kb=N shmem_kb=N
 * (getrusage's ru_maxrss, VmHWM, FILE's size, smaps_rollup's AnonHugePages, and RssAnon,
 * RssFile, RssShmem at the end). */
#include <sys/resource.h>
#include <sys/stat.h>

#include "common.h"

#define HUGE (2 * MiB)

static __attribute__((noinline)) void touch_anon(void)
{
    touch(map_anon(64 * MiB, MAP_PRIVATE), 64 * MiB);
}

static __attribute__((noinline)) void read_zero(void)
{
    char *buf = map_anon(16 * MiB, MAP_PRIVATE);
    int fd = open("/dev/zero", O_RDONLY);
    expect(fd >= 0, "/dev/zero to open");
    for (long done = 0; done < 16 * MiB;) {
        ssize_t n = read(fd, buf + done, (size_t)(16 * MiB - done));
        expect(n > 0, "read from /dev/zero");
        done += n;
    }
    close(fd);
}

static __attribute__((noinline)) long read_file(const char *path, long stride)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    expect(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0, "FILE to open");
    volatile char *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    expect(p != MAP_FAILED, "FILE to map");
    long sum = 0;
    for (long i = 0; i < st.st_size; i += 4096 * stride)
        sum += p[i];
    close(fd);
    return st.st_size + (sum & 0);
}

static __attribute__((noinline)) void touch_shared(void)
{
    touch(map_anon(8 * MiB, MAP_SHARED), 8 * MiB);
}

static __attribute__((noinline)) void touch_huge(void)
{
    char *p = map_anon(32 * MiB + HUGE, MAP_PRIVATE);
    char *aligned = (char *)(((unsigned long)p + HUGE - 1) & ~(HUGE - 1));
    madvise(aligned, 32 * MiB, MADV_HUGEPAGE);
    for (long i = 0; i < 32 * MiB; i += HUGE)
        aligned[i] = 1;
}

int main(int argc, char **argv)
{
    expect(argc == 2 || argc == 3, "FILE [STRIDE] arguments");
    long stride = argc == 3 ? atol(argv[2]) : 1;
    expect(stride >= 1, "a STRIDE of 1 page or more");
    touch_anon();
    read_zero();
    long file_bytes = read_file(argv[1], stride);
    touch_shared();
    touch_huge();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *status = "/proc/self/status";
    say("rss_kinds: maxrss_kb=%ld hwm_kb=%ld file_bytes=%ld huge_kb=%ld anon_kb=%ld file_kb=%ld "
        "shmem_kb=%ld", ru.ru_maxrss, proc_kb(status, "VmHWM:"), file_bytes,
        proc_kb("/proc/self/smaps_rollup", "AnonHugePages:"), proc_kb(status, "RssAnon:"),
        proc_kb(status, "RssFile:"), proc_kb(status, "RssShmem:"));
    return 0;
}
