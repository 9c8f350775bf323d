/* liquidsoap: why "how much memory does it use?" has several answers. One process holds
 *  - private heap: 24 MiB of decoded audio frames, malloc'd and written (anonymous, private);
 *  - a large file mapped and read sparsely: a 64 MiB "media library" (created at PATH if it
 *    is missing), of which it reads one page per MiB, so about 4 MiB of it is resident;
 *  - a shared mapping: 8 MiB of MAP_SHARED memory (the kind a child or another process sees
 *    too), written by a child it forks and read by the parent.
 * It prints what /proc/self/status says RSS is made of, in KiB, then the same from
 * /proc/self/smaps_rollup:
 *   rss total=K anon=K file=K shmem=K
 *   rollup rss=K private_dirty=K shared_dirty=K private_clean=K shared_clean=K
 * Usage: liquidsoap PATH */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAP_BYTES (24u << 20)
#define FILE_BYTES (64u << 20)
#define SHARED_BYTES (8u << 20)
#define FRAME_BYTES (64u << 10)

static long field_kib(const char *path, const char *name)
{
    char line[256];
    long value = -1;
    size_t n = strlen(name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            value = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return value;
}

/* Decoded audio: many frames on the heap, each written so its pages are resident. */
static __attribute__((noinline)) char **decode_frames(size_t count)
{
    char **frames = malloc(count * sizeof(*frames));
    for (size_t i = 0; i < count; i++) {
        frames[i] = malloc(FRAME_BYTES);
        memset(frames[i], (int)i, FRAME_BYTES);
    }
    return frames;
}

static __attribute__((noinline)) int make_library(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return -1;
    if ((size_t)st.st_size != FILE_BYTES) {
        char block[65536];
        memset(block, 'a', sizeof(block));
        if (ftruncate(fd, 0) != 0)
            return -1;
        for (size_t done = 0; done < FILE_BYTES; done += sizeof(block))
            if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
                return -1;
    }
    return fd;
}

/* The media library: mapped whole, read here and there (an index lookup, a seek). */
static __attribute__((noinline)) unsigned long read_library(const char *path)
{
    int fd = make_library(path);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    unsigned char *lib = mmap(NULL, FILE_BYTES, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (lib == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(lib, FILE_BYTES, MADV_RANDOM);  /* no readahead: only the pages read are resident */
    unsigned long sum = 0;
    long page = sysconf(_SC_PAGESIZE);
    /* One page per MiB: the kernel maps up to 16 cached pages around each fault
     * (fault-around), so about 64 KiB per MiB, 4 MiB in all, become resident. */
    for (size_t off = 0; off < FILE_BYTES; off += 256 * (size_t)page)
        sum += lib[off];
    return sum;
}

static int done[2];
static pid_t encoder;

/* A buffer shared with a child process (an encoder, say): MAP_SHARED memory is shmem. The
 * child writes it and stays alive until the parent has measured, so the pages are shared. */
static __attribute__((noinline)) unsigned char *share_buffer(void)
{
    unsigned char *shared = mmap(NULL, SHARED_BYTES, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    int ready[2];
    if (pipe(ready) != 0 || pipe(done) != 0) {
        perror("pipe");
        exit(1);
    }
    encoder = fork();
    if (encoder == 0) {
        char c = 0;
        close(done[1]);
        memset(shared, 0x33, SHARED_BYTES);
        if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) {
        fprintf(stderr, "liquidsoap: the encoder process died\n");
        exit(1);
    }
    unsigned long sum = 0;
    for (size_t off = 0; off < SHARED_BYTES; off += 4096)
        sum += shared[off];
    return sum ? shared : NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: liquidsoap PATH (the media library file, created if missing)\n");
        return 2;
    }
    /* The encoder is forked first, so the heap below is the parent's alone. */
    unsigned char *shared = share_buffer();
    char **frames = decode_frames(HEAP_BYTES / FRAME_BYTES);
    unsigned long sum = read_library(argv[1]);
    const char *status = "/proc/self/status", *rollup = "/proc/self/smaps_rollup";
    printf("rss total=%ld anon=%ld file=%ld shmem=%ld\n", field_kib(status, "VmRSS"),
           field_kib(status, "RssAnon"), field_kib(status, "RssFile"),
           field_kib(status, "RssShmem"));
    printf("rollup rss=%ld private_dirty=%ld shared_dirty=%ld private_clean=%ld shared_clean=%ld\n",
           field_kib(rollup, "Rss"), field_kib(rollup, "Private_Dirty"),
           field_kib(rollup, "Shared_Dirty"), field_kib(rollup, "Private_Clean"),
           field_kib(rollup, "Shared_Clean"));
    printf("library checksum %lu\n", sum);
    fflush(stdout);
    close(done[1]);
    waitpid(encoder, NULL, 0);
    return frames[0][0] + (shared ? 0 : 1);
}
