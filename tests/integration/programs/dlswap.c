/* dlswap A B: dlopen library A, allocate 2 x 4 MiB through it, dlclose it; dlopen library B,
 * which the loader puts at the same address, and allocate 40 MiB through it.
 * dlswap A: dlopen A, allocate 8 MiB through it at once and exit (gone before heaptrace has
 * read the records). Prints where each library was loaded and what it allocated: the truth
 * heaptrace's attribution is compared with. */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void *(*grow_fn)(size_t);

static void pause_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, 0);
}

/* dlopen `path`, call its grow function `calls` times for `n` bytes (pausing between calls so
 * that heaptrace learns the call path and walks it in the probe), print where it was loaded. */
__attribute__((noinline)) static void *load(const char *path, const char *sym, size_t n,
                                            int calls, const char *tag)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		exit(2);
	}
	grow_fn grow = (grow_fn)dlsym(h, sym);
	struct link_map *map;
	dlinfo(h, RTLD_DI_LINKMAP, &map);
	for (int i = 0; i < calls; i++) {
		if (i)
			pause_ms(300);
		grow(n);
	}
	printf("%s base=%#lx grow=%p bytes=%zu\n", tag, (unsigned long)map->l_addr, (void *)grow,
	       n * calls);
	fflush(stdout);
	return h;
}

int main(int argc, char **argv)
{
	if (argc == 2) {
		load(argv[1], "grow_in_a", 8 << 20, 1, "A");
		return 0;
	}
	if (argc != 3)
		return 2;
	dlclose(load(argv[1], "grow_in_a", 4 << 20, 2, "A"));
	if (dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD))
		return 3; /* A must be gone for B to take its place */
	load(argv[2], "grow_in_b", 40 << 20, 1, "B");
	return 0;
}
