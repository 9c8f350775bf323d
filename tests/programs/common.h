/* Helpers shared by the test programs.
 *
 * The programs must make the same syscalls on every run, so they never use stdio
 * (its buffers come from malloc, and their size depends on whether stdout is a
 * terminal or a pipe): messages are formatted on the stack and written with write(2). */
#ifndef HEAPTRACE_TEST_COMMON_H
#define HEAPTRACE_TEST_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Write to every page so the memory is really used (and the compiler keeps it). */
static inline void touch(void *p, size_t len)
{
    volatile char *c = p;
    for (size_t i = 0; i < len; i += 4096)
        c[i] = (char)i;
}

#endif
