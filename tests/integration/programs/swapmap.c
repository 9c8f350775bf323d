/* swapmap DIR LIB MODE: chdir to DIR, dlopen("./LIB") (a path relative to DIR, not to
 * heaptrace's cwd), then put MODE at DIR/LIB in the library's place: "fifo" (opening it blocks
 * until a writer comes), "zero" (a link to /dev/zero, which never ends); then allocate 8 MiB
 * through the library's grow_in_a and stay 2 s, for heaptrace to read the library through
 * /proc/PID/map_files while the process runs. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4 || chdir(argv[1]) != 0)
		return 2;
	char rel[256];
	snprintf(rel, sizeof rel, "./%s", argv[2]);
	void *lib = dlopen(rel, RTLD_NOW);
	if (!lib)
		return 3;
	void *(*grow)(size_t) = (void *(*)(size_t))dlsym(lib, "grow_in_a");
	if (unlink(rel) != 0)
		return 4;
	if (strcmp(argv[3], "fifo") == 0 && mkfifo(rel, 0644) != 0)
		return 5;
	if (strcmp(argv[3], "zero") == 0 && symlink("/dev/zero", rel) != 0)
		return 6;
	if (!grow || !grow(8 << 20))
		return 7;
	struct timespec pause = {2, 0};
	nanosleep(&pause, 0);
	return 0;
}
