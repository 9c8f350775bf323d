/* A library whose one function is named with terminal escapes: OSC 52 (write the viewer's
 * clipboard), BEL, and "clear the screen". Compiled with -shared -fPIC by the test. */
#include <stddef.h>
#include <sys/mman.h>

#define EVIL_NAME "\"\x1b]52;c;cHduZWQ=\x07grow\x1b[2J\""

__attribute__((noinline)) void *evil(size_t n) __asm__(EVIL_NAME);

__attribute__((noinline)) void *evil(size_t n)
{
	return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
