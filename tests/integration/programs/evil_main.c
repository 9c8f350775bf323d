/* dlopen the library named argv[1] (its path has escapes too) and call its escape-named
 * function for 8 MiB. The test runs this program under a file name with escapes, so its
 * comm and command line carry them as well. */
#include <dlfcn.h>
#include <stddef.h>

#define EVIL_NAME "\x1b]52;c;cHduZWQ=\x07grow\x1b[2J"

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	void *lib = dlopen(argv[1], RTLD_NOW);
	if (!lib)
		return 3;
	void *(*grow)(size_t) = (void *(*)(size_t))dlsym(lib, EVIL_NAME);
	if (!grow || !grow(8 << 20))
		return 4;
	return 0;
}
