#!/usr/sbin/dtrace -qs
/*
 * mremapbytes.d: growth through mremap() (new_len - old_len when positive),
 * summed by user stack. mremap() exists on Linux only (DTrace for Linux);
 * illumos and macOS have no such call, and there this script traces nothing.
 *
 * Run (as root; -c runs no shell: CMD is split on blanks, no quoting):
 *
 *	dtrace -x evaltime=exec -qs mremapbytes.d -c 'CMD ARGS' -o out.stacks
 *	heaptrace import dtrace out.stacks -o run.db --event mremap
 *
 *	dtrace's -o appends to a file that exists: remove it before running
 *	again, or an import adds up both runs.
 *
 * -x evaltime=exec: see brkquantize.d. zdefs lets the script load where the
 * probe does not exist. A program that never calls mremap() leaves an empty
 * aggregation: the output file is empty and imports as zero calls and bytes.
 */

#pragma D option quiet
#pragma D option zdefs

syscall::mremap:entry
/progenyof($target)/
{
	self->grow = (int64_t)arg2 - (int64_t)arg1;
	self->in_mremap = 1;
}

syscall::mremap:return
/self->in_mremap && errno == 0 && self->grow > 0/
{
	@[ustack()] = sum(self->grow);
}

syscall::mremap:return
/self->in_mremap/
{
	self->in_mremap = 0;
	self->grow = 0;
}
