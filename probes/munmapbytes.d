#!/usr/sbin/dtrace -qs
/*
 * munmapbytes.d: bytes given back with munmap(), summed by user stack
 * (illumos, macOS, Linux), and on macOS with the mach_vm_deallocate trap.
 *
 * Run (as root; -c runs no shell: CMD is split on blanks, no quoting):
 *
 *	dtrace -x evaltime=exec -qs munmapbytes.d -c 'CMD ARGS' -o out.stacks
 *	heaptrace import dtrace out.stacks -o run.db --event munmap
 *
 *	dtrace's -o appends to a file that exists: remove it before running
 *	again, or an import adds up both runs.
 *
 * -x evaltime=exec: see brkquantize.d. zdefs: see mmapbytes.d.
 * Bytes = the length argument of a successful call.
 */

#pragma D option quiet
#pragma D option zdefs

syscall::munmap:entry
/progenyof($target)/
{
	self->munmap_len = arg1;
	self->in_munmap = 1;
}

syscall::munmap:return
/self->in_munmap && errno == 0/
{
	@[ustack()] = sum(self->munmap_len);
}

syscall::munmap:return
/self->in_munmap/
{
	self->in_munmap = 0;
}

/* macOS: mach_vm_deallocate(task, addr, size). */
mach_trap::_kernelrpc_mach_vm_deallocate_trap:entry
/progenyof($target)/
{
	self->vm_len = arg2;
	self->in_vm = 1;
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:return
/self->in_vm && arg0 == 0/
{
	@[ustack()] = sum(self->vm_len);
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:return
/self->in_vm/
{
	self->in_vm = 0;
}
