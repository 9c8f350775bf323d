/* grow: the pkgin story in miniature. A "package manager" that buffers a whole 48 MiB download
 * in memory (realloc doubling: mmap, then mremap growth), keeps a small index of entries on the
 * heap (brk), then frees the buffer (munmap). heaptrace shows which function took what.
 * `grow --stream` is the fixed version: the download goes through one small buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buffer {
    char *data;
    size_t len, cap;
};

static __attribute__((noinline)) void buffer_append(struct buffer *b, const char *chunk, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = b->cap ? b->cap * 2 : 65536;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            exit(1);
    }
    memcpy(b->data + b->len, chunk, n);
    b->len += n;
}

static __attribute__((noinline)) void download_package(struct buffer *b, size_t size)
{
    char chunk[4096];
    for (size_t done = 0; done < size; done += sizeof(chunk)) {
        memset(chunk, (int)(done >> 12), sizeof(chunk));
        buffer_append(b, chunk, sizeof(chunk));
    }
}

static __attribute__((noinline)) char **index_entries(size_t count)
{
    char **entries = malloc(count * sizeof(*entries));
    for (size_t i = 0; i < count; i++) {
        entries[i] = malloc(64 + i % 512);
        snprintf(entries[i], 64, "pkg-%zu", i);
    }
    return entries;
}

/* The fix pkgin got: stream the download through one small buffer instead of keeping it. */
static __attribute__((noinline)) size_t stream_package(size_t size)
{
    static char chunk[4096];
    size_t sum = 0;
    for (size_t done = 0; done < size; done += sizeof(chunk)) {
        memset(chunk, (int)(done >> 12), sizeof(chunk));
        sum += (unsigned char)chunk[0];
    }
    return sum;
}

int main(int argc, char **argv)
{
    struct buffer b = {0};
    if (argc > 1 && strcmp(argv[1], "--stream") == 0)
        b.len = stream_package(48u << 20) ? 48u << 20 : 0;
    else
        download_package(&b, 48u << 20);
    char **entries = index_entries(20000);
    printf("downloaded %zu bytes, indexed %s..%s\n", b.len, entries[0], entries[19999]);
    free(b.data);
    return 0;
}
