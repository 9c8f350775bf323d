/* Helpers shared by the test programs.
 *
 * The programs must make the same syscalls on every run, so they never use stdio
 * (its buffers come from malloc, and their size depends on whether stdout is a
 * terminal or a pipe): messages are formatted on the stack and written with write(2). */
#ifndef HEAPTRACE_TEST_COMMON_H
#define HEAPTRACE_TEST_COMMON_H

#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KiB (1024L)
#define MiB (1024L * 1024L)

/* Print one line on stderr without allocating. */
static inline void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t unused = write(2, line, (size_t)n);
    (void)unused;
}

/* A check that must hold for the program to be the test it claims to be. */
#define expect(cond, what)                                                   \
    do {                                                                     \
        if (!(cond)) {                                                       \
            say("%s:%d: expected %s", __FILE__, __LINE__, what);             \
            _exit(70);                                                       \
        }                                                                    \
    } while (0)

/* The path of program `name` in this program's own directory (no allocation). */
static inline void sibling_path(char *out, size_t size, const char *name)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    expect(n > 0, "to read /proc/self/exe");
    self[n] = '\0';
    snprintf(out, size, "%s/%s", dirname(self), name);
}

/* Write to every page so the memory is really used (and the compiler keeps it). */
static inline void touch(void *p, size_t len)
{
    volatile char *c = p;
    for (size_t i = 0; i < len; i += 4096)
        c[i] = (char)i;
}

/* Fresh anonymous memory, never touched: MAP_PRIVATE or MAP_SHARED in `flags`. */
static inline char *map_anon(long len, int flags)
{
    char *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    expect(p != MAP_FAILED, "an anonymous mmap");
    return p;
}

/* A "Field:   N kB" line of a /proc file (status, smaps_rollup), in kB; -1 if absent. */
static inline long proc_kb(const char *path, const char *field)
{
    char buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *at = strstr(buf, field);
    return at ? strtol(at + strlen(field), NULL, 10) : -1;
}

#endif
