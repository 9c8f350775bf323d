#!/usr/sbin/dtrace -qs
/*
 * heaptrace-events.d: one line per memory call of the traced process tree,
 * followed by its user stack. `heaptrace run` runs it on illumos and macOS
 * and turns its output into a recording; you can also run it yourself:
 *
 *	dtrace -x evaltime=exec -qs heaptrace-events.d -c 'CMD ARGS' -o out.events
 *	heaptrace import dtrace out.events -o run.db
 *
 * (as root; -c runs no shell: CMD is split on blanks, no quoting). Note that
 * dtrace's -o appends to a file that exists: remove it before running again
 * (heaptrace import refuses a file that holds two runs). On illumos and macOS, add
 * -s heaptrace-signals.d for the signal that killed the target (DTrace for
 * Linux cannot enable proc:::signal-send without kprobes, so it is not here).
 * -x evaltime=exec: tracing starts right after exec, so calls made before
 * main() are seen; a #pragma would come too late, as dtrace creates the -c
 * process before it compiles this file. zdefs lets one script load on every
 * OS although each lacks some of these probes.
 *
 * Output, every field a decimal number unless named otherwise:
 *
 *	target PID
 *	call KIND FUNC PID TID TIMESTAMP A0 A1 A2 A3 A4 RET ERRNO
 *	                <ustack() frames, indented, leaf first>
 *	proc fork CHILD PARENT TIMESTAMP
 *	proc exec PID TIMESTAMP EXECNAME
 *	proc exitcode PID CODE
 *	proc signal PID SIGNAL              (from heaptrace-signals.d)
 *	proc exit PID TIMESTAMP WHY
 *	total calls|failed|bytes|released KIND VALUE
 *	quantize KIND
 *	<a quantize() table of growth sizes>
 *
 * KIND is heaptrace's: brk, mmap, munmap, mremap. FUNC is the probe function
 * (mmap64, _kernelrpc_mach_vm_map_trap, ...). A0..A4 per kind:
 *	brk     requested break (an address)          RET: illumos 0, Linux the new break
 *	mmap    addr, len, prot, flags, fd            RET: the mapped address
 *	munmap  addr, len                             RET: 0
 *	mremap  old addr, old len, new len, flags     RET: the new address
 * The macOS Mach traps are reported as mmap (allocate, map: A0 = granted
 * address, A1 = size, A3 = flags) and munmap (deallocate: A0, A1); their RET
 * is a kern_return_t and ERRNO is 0. A call failed when ERRNO or, for a
 * trap, RET is non-zero.
 *
 * Totals and the quantize() table come from aggregations, which DTrace keeps
 * in the kernel: they stay exact when the per-call lines drop.
 */

#pragma D option quiet
#pragma D option zdefs

int64_t brk_prev[int];

BEGIN
{
	printf("target %d\n", $target);
}

/* brk: growth = new break - previous break of the process (see brkquantize.d). */
syscall::brk:entry
/progenyof($target)/
{
	self->req = arg0;
	self->in_brk = 1;
}

syscall::brk:return
/self->in_brk/
{
	this->brk = errno == 0 ? (arg0 == 0 ? self->req : arg0) : 0;
	this->grow = this->brk != 0 && brk_prev[pid] != 0 ?
	    this->brk - brk_prev[pid] : 0;
	brk_prev[pid] = this->brk != 0 ? this->brk : brk_prev[pid];
	@calls["brk"] = count();
	@failed["brk"] = sum(errno != 0);
	printf("call brk %s %d %d %d %d 0 0 0 0 %d %d\n", probefunc, pid, tid,
	    timestamp, self->req, arg0, errno);
	ustack();
	printf("\n");
}

syscall::brk:return
/self->in_brk && this->grow > 0/
{
	@bytes["brk"] = sum(this->grow);
	@sizes["brk"] = quantize(this->grow);
}

syscall::brk:return
/self->in_brk && this->grow < 0/
{
	@released["brk"] = sum(-this->grow);
}

syscall::brk:return
/self->in_brk/
{
	self->in_brk = 0;
	self->req = 0;
}

/* mmap (mmap64 for large files on 32-bit illumos). */
syscall::mmap*:entry
/progenyof($target)/
{
	self->a0 = arg0;
	self->a1 = arg1;
	self->a2 = arg2;
	self->a3 = arg3;
	self->a4 = arg4;
	self->in_mmap = 1;
}

syscall::mmap*:return
/self->in_mmap/
{
	@calls["mmap"] = count();
	@failed["mmap"] = sum(errno != 0);
	printf("call mmap %s %d %d %d %d %d %d %d %d %d %d\n", probefunc, pid,
	    tid, timestamp, self->a0, self->a1, self->a2, self->a3,
	    (int)self->a4, arg0, errno);
	ustack();
	printf("\n");
}

syscall::mmap*:return
/self->in_mmap && errno == 0/
{
	@bytes["mmap"] = sum(self->a1);
	@sizes["mmap"] = quantize(self->a1);
}

syscall::mmap*:return
/self->in_mmap/
{
	self->in_mmap = 0;
}

syscall::munmap:entry
/progenyof($target)/
{
	self->a0 = arg0;
	self->a1 = arg1;
	self->in_munmap = 1;
}

syscall::munmap:return
/self->in_munmap/
{
	@calls["munmap"] = count();
	@failed["munmap"] = sum(errno != 0);
	printf("call munmap %s %d %d %d %d %d 0 0 0 %d %d\n", probefunc, pid,
	    tid, timestamp, self->a0, self->a1, arg0, errno);
	ustack();
	printf("\n");
}

syscall::munmap:return
/self->in_munmap && errno == 0/
{
	@bytes["munmap"] = sum(self->a1);
	@sizes["munmap"] = quantize(self->a1);
}

syscall::munmap:return
/self->in_munmap/
{
	self->in_munmap = 0;
}

/* mremap: Linux only; growth = new_len - old_len. */
syscall::mremap:entry
/progenyof($target)/
{
	self->a0 = arg0;
	self->a1 = arg1;
	self->a2 = arg2;
	self->a3 = arg3;
	self->in_mremap = 1;
}

syscall::mremap:return
/self->in_mremap/
{
	this->grow = errno == 0 ? (int64_t)self->a2 - (int64_t)self->a1 : 0;
	@calls["mremap"] = count();
	@failed["mremap"] = sum(errno != 0);
	printf("call mremap %s %d %d %d %d %d %d %d 0 %d %d\n", probefunc, pid,
	    tid, timestamp, self->a0, self->a1, self->a2, self->a3, arg0,
	    errno);
	ustack();
	printf("\n");
}

syscall::mremap:return
/self->in_mremap && this->grow > 0/
{
	@bytes["mremap"] = sum(this->grow);
	@sizes["mremap"] = quantize(this->grow);
}

syscall::mremap:return
/self->in_mremap && this->grow < 0/
{
	@released["mremap"] = sum(-this->grow);
}

syscall::mremap:return
/self->in_mremap/
{
	self->in_mremap = 0;
}

/*
 * macOS: malloc takes memory with mach_vm_map / mach_vm_allocate and gives
 * it back with mach_vm_deallocate; arg1 of allocate and map points to the
 * address, which holds the granted one on return.
 */
mach_trap::_kernelrpc_mach_vm_allocate_trap:entry,
mach_trap::_kernelrpc_mach_vm_map_trap:entry
/progenyof($target)/
{
	self->addrp = arg1;
	self->a1 = arg2;
	self->a3 = probefunc == "_kernelrpc_mach_vm_map_trap" ? arg4 : arg3;
	self->in_vm = 1;
}

mach_trap::_kernelrpc_mach_vm_allocate_trap:return,
mach_trap::_kernelrpc_mach_vm_map_trap:return
/self->in_vm/
{
	this->addr = arg0 == 0 ? *(uint64_t *)copyin(self->addrp, 8) : 0;
	@calls["mmap"] = count();
	@failed["mmap"] = sum(arg0 != 0);
	printf("call mmap %s %d %d %d %d %d 0 %d -1 %d 0\n", probefunc, pid,
	    tid, timestamp, this->addr, self->a1, self->a3, arg0);
	ustack();
	printf("\n");
}

mach_trap::_kernelrpc_mach_vm_allocate_trap:return,
mach_trap::_kernelrpc_mach_vm_map_trap:return
/self->in_vm && arg0 == 0/
{
	@bytes["mmap"] = sum(self->a1);
	@sizes["mmap"] = quantize(self->a1);
}

mach_trap::_kernelrpc_mach_vm_allocate_trap:return,
mach_trap::_kernelrpc_mach_vm_map_trap:return
/self->in_vm/
{
	self->in_vm = 0;
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:entry
/progenyof($target)/
{
	self->a0 = arg1;
	self->a1 = arg2;
	self->in_vmfree = 1;
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:return
/self->in_vmfree/
{
	@calls["munmap"] = count();
	@failed["munmap"] = sum(arg0 != 0);
	printf("call munmap %s %d %d %d %d %d 0 0 0 %d 0\n", probefunc, pid,
	    tid, timestamp, self->a0, self->a1, arg0);
	ustack();
	printf("\n");
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:return
/self->in_vmfree && arg0 == 0/
{
	@bytes["munmap"] = sum(self->a1);
	@sizes["munmap"] = quantize(self->a1);
}

mach_trap::_kernelrpc_mach_vm_deallocate_trap:return
/self->in_vmfree/
{
	self->in_vmfree = 0;
}

/* The process tree: forks inherit the break, exec starts afresh. */
proc:::create
/progenyof($target)/
{
	brk_prev[args[0]->pr_pid] = brk_prev[pid];
	printf("proc fork %d %d %d\n", args[0]->pr_pid, pid, timestamp);
}

proc:::exec-success
/progenyof($target)/
{
	brk_prev[pid] = 0;
	printf("proc exec %d %d %s\n", pid, timestamp, execname);
}

/* The exit status: rexit on illumos, exit on macOS, exit_group on Linux. */
syscall::rexit:entry,
syscall::exit:entry,
syscall::exit_group:entry
/progenyof($target)/
{
	printf("proc exitcode %d %d\n", pid, (int)arg0);
}

proc:::exit
/progenyof($target)/
{
	printf("proc exit %d %d %d\n", pid, timestamp, args[0]);
}

END
{
	printa("total calls %s %@d\n", @calls);
	printa("total failed %s %@d\n", @failed);
	printa("total bytes %s %@d\n", @bytes);
	printa("total released %s %@d\n", @released);
	printa("quantize %s\n%@d\n", @sizes);
}
