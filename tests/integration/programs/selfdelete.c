/* Deletes its own binary first thing, then allocates 8 MiB through two functions and stays
 * 2 s: the program can only be named through /proc/PID/exe and map_files (or its build-id)
 * now, never by its path. */
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static void *level2(size_t n)
{
	return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

__attribute__((noinline)) static void *level1(size_t n)
{
	void *p = level2(n);
	return p == MAP_FAILED ? 0 : p;
}

int main(int argc, char **argv)
{
	(void)argc;
	if (unlink(argv[0]) != 0)
		return 2;
	if (!level1(8 << 20))
		return 3;
	struct timespec pause = {2, 0};
	nanosleep(&pause, 0);
	return 0;
}
