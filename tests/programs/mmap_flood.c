/* mmap_flood: maps and unmaps one page in a tight loop until killed, faster than heaptrace
 * hands the calls on (a flood: the records wait in heaptrace's backlog).
 *
 * Syscalls made by main: mmap(4096, private anonymous) then munmap of it, for ever; nothing
 * is held. Prints "flooding" once the loop runs. */
#include "common.h"

int main(void)
{
    say("flooding");
    for (;;) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        expect(p != MAP_FAILED, "mmap to succeed");
        munmap(p, 4096);
    }
}
