/* The library dlswap.c loads twice, compiled as two files (-DGROW=grow_in_a -DPAD=2048, then
 * grow_in_b and 8192): the same code at the same offsets with a different frame size, so an
 * unwinding rule learned in one is wrong in the other at the same address. */
#include <stddef.h>
#include <sys/mman.h>

__attribute__((noinline)) void *GROW(size_t n)
{
	volatile char pad[PAD];
	pad[0] = 1;
	void *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pad[PAD - 1] = 2;
	return pad[0] ? p : 0;
}
