/* Known memory calls for the perf import test: from main -> grow_maps, five anonymous
 * mmaps of 1..5 pages of 8 KiB each and two munmaps of 4 KiB; then two sbrk()s. */
#include <sys/mman.h>
#include <unistd.h>

#define ROUNDS 5

__attribute__((noinline)) static void *map_pages(size_t n)
{
	return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

__attribute__((noinline)) void grow_maps(int i)
{
	void *p = map_pages((size_t)(i + 1) * 8192);
	if (i % 2)
		munmap(p, 4096);
}

int main(void)
{
	for (int i = 0; i < ROUNDS; i++)
		grow_maps(i);
	sbrk(65536);
	sbrk(131072);
	return 0;
}
