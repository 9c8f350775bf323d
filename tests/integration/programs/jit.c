/* JIT code as a runtime makes it: a trampoline copied into an anonymous executable mapping,
 * named in /tmp/perf-PID.map, through which 8 MiB are allocated (mmap <- grow <- the JIT
 * trampoline <- main). Prints its pid and the trampoline's address. x86_64 only. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const unsigned char trampoline[] = {
	0x48, 0x83, 0xec, 0x08, /* sub $8, %rsp */
	0x48, 0x89, 0xf8,       /* mov %rdi, %rax */
	0x48, 0x89, 0xf7,       /* mov %rsi, %rdi */
	0xff, 0xd0,             /* call *%rax */
	0x48, 0x83, 0xc4, 0x08, /* add $8, %rsp */
	0xc3,                   /* ret */
};

__attribute__((noinline)) static void *grow(size_t n)
{
	return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

int main(void)
{
	void *code = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED)
		return 2;
	memcpy(code, trampoline, sizeof trampoline);
	char path[64];
	snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
	FILE *map = fopen(path, "w");
	if (!map)
		return 3;
	fprintf(map, "%lx %zx jitted_trampoline\n", (unsigned long)code, sizeof trampoline);
	fclose(map);
	void *(*call)(void *(*)(size_t), size_t) = (void *(*)(void *(*)(size_t), size_t))code;
	if (call(grow, 8 << 20) == MAP_FAILED)
		return 4;
	printf("pid=%d code=%p\n", (int)getpid(), code);
	return 0;
}
