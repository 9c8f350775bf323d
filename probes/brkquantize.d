#!/usr/sbin/dtrace -qs
/*
 * brkquantize.d: heap growth through brk(): a quantize() table of growth
 * sizes, the total bytes added to the heap and the number of brk() calls, in
 * the spirit of the classic brkquantize.d.
 *
 * Run (as root; -c runs no shell: CMD is split on blanks, no quoting):
 *
 *	dtrace -x evaltime=exec -qs brkquantize.d -c 'CMD ARGS'
 *	dtrace -x evaltime=exec -qs brkquantize.d -c 'CMD ARGS' -o out.txt
 *	heaptrace import dtrace out.txt -o run.db && heaptrace histogram run.db
 *
 *	dtrace's -o appends to a file that exists: remove it before running
 *	again, or an import adds up both runs.
 *
 * -x evaltime=exec starts tracing right after exec, so brk() calls made by
 * the runtime linker and initializers before main() are counted. It has to
 * be given on the command line: dtrace creates the -c process before it
 * compiles this file, so a #pragma here would come too late.
 *
 * Semantics (see docs/dtrace.md): brk()'s argument is the requested new
 * break, an address, not a size. Growth is the difference between
 * consecutive breaks of one process. illumos returns 0 on success (the new
 * break is the argument); Linux returns the new break itself. The first
 * brk() of a process only sets the baseline (its growth is unknown), a child
 * inherits its parent's break and exec starts afresh. Every brk() call is
 * counted, whether it moved the break or not; shrinks are summed apart.
 * macOS: malloc never calls brk(); use mmapbytes.d there.
 */

#pragma D option quiet

int64_t brk_prev[int];

syscall::brk:entry
/progenyof($target)/
{
	self->req = arg0;
	self->in_brk = 1;
}

syscall::brk:return
/self->in_brk/
{
	@calls["Total number of brk() calls"] = count();
	/* illumos: 0 means success and the new break is the argument. */
	this->brk = errno == 0 ? (arg0 == 0 ? self->req : arg0) : 0;
	this->grow = this->brk != 0 && brk_prev[pid] != 0 ?
	    this->brk - brk_prev[pid] : 0;
}

syscall::brk:return
/self->in_brk && errno != 0/
{
	@failed["Failed brk() calls"] = count();
}

syscall::brk:return
/self->in_brk && this->grow > 0/
{
	@sizes["brk() allocation sizes"] = quantize(this->grow);
	@bytes["Total bytes allocated"] = sum(this->grow);
}

syscall::brk:return
/self->in_brk && this->grow < 0/
{
	@released["Total bytes released by shrinking"] = sum(-this->grow);
}

/* Last clause for this probe: remember the break, end the call. */
syscall::brk:return
/self->in_brk/
{
	brk_prev[pid] = this->brk != 0 ? this->brk : brk_prev[pid];
	self->in_brk = 0;
	self->req = 0;
}

proc:::create
/progenyof($target)/
{
	brk_prev[args[0]->pr_pid] = brk_prev[pid];
}

proc:::exec-success
/progenyof($target)/
{
	brk_prev[pid] = 0;
}

/* Print in the classic order: the table, then bytes, then calls. */
END
{
	printa(@sizes);
	printa(@bytes);
	printa(@calls);
	printa(@failed);
	printa(@released);
}
