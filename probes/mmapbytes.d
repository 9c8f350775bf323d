#!/usr/sbin/dtrace -qs
/*
 * mmapbytes.d: bytes mapped, summed by user stack: successful mmap() calls
 * (illumos, macOS, Linux) and, on macOS, the Mach VM traps through which
 * malloc takes memory (mach_vm_allocate, mach_vm_map).
 *
 * Run (as root; -c runs no shell: CMD is split on blanks, no quoting):
 *
 *	dtrace -x evaltime=exec -qs mmapbytes.d -c 'CMD ARGS' -o out.stacks
 *	heaptrace import dtrace out.stacks -o run.db --event mmap
 *
 *	dtrace's -o appends to a file that exists: remove it before running
 *	again, or an import adds up both runs.
 *
 * -x evaltime=exec: see brkquantize.d (calls before main() are counted).
 * Probes that do not exist on this OS (the mach_trap provider outside macOS,
 * mmap64 outside 32-bit illumos) are allowed by the zdefs option.
 *
 * Bytes = the length argument of a successful call (errno == 0 for mmap();
 * KERN_SUCCESS, 0, for the Mach traps). File-backed mappings are counted as
 * well as anonymous ones, as heaptrace counts them.
 */

#pragma D option quiet
#pragma D option zdefs

syscall::mmap*:entry
/progenyof($target)/
{
	self->mmap_len = arg1;
	self->in_mmap = 1;
}

syscall::mmap*:return
/self->in_mmap && errno == 0/
{
	@[ustack()] = sum(self->mmap_len);
}

syscall::mmap*:return
/self->in_mmap/
{
	self->in_mmap = 0;
}

/* macOS: mach_vm_allocate(task, &addr, size, flags), mach_vm_map(task, &addr, size, ...). */
mach_trap::_kernelrpc_mach_vm_allocate_trap:entry,
mach_trap::_kernelrpc_mach_vm_map_trap:entry
/progenyof($target)/
{
	self->vm_len = arg2;
	self->in_vm = 1;
}

mach_trap::_kernelrpc_mach_vm_allocate_trap:return,
mach_trap::_kernelrpc_mach_vm_map_trap:return
/self->in_vm && arg0 == 0/
{
	@[ustack()] = sum(self->vm_len);
}

mach_trap::_kernelrpc_mach_vm_allocate_trap:return,
mach_trap::_kernelrpc_mach_vm_map_trap:return
/self->in_vm/
{
	self->in_vm = 0;
}
