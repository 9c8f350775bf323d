#!/usr/sbin/dtrace -qs
/*
 * brkbytes.d: heap growth through brk(), bytes summed by user stack, in the
 * spirit of the classic brkbytes.d (a memory flame graph of who grows the
 * heap).
 *
 * Run (as root; -c runs no shell: CMD is split on blanks, no quoting):
 *
 *	dtrace -x evaltime=exec -qs brkbytes.d -c 'CMD ARGS' -o out.stacks
 *	heaptrace import dtrace out.stacks -o run.db --event brk
 *	heaptrace flame run.db > brk.svg
 *
 *	dtrace's -o appends to a file that exists: remove it before running
 *	again, or an import adds up both runs.
 *
 * (FlameGraph's stackcollapse.pl folds the same file; heaptrace folds it the
 * same way.) -x evaltime=exec makes tracing start right after exec so growth
 * before main() is seen; a #pragma would come too late with -c.
 *
 * Growth = new break - previous break of the process (see brkquantize.d and
 * docs/dtrace.md for the per-OS return values). The first brk() of a process
 * only sets the baseline. Only growth is summed; shrinks are left out, so
 * every stack's value is a positive number of bytes. macOS: malloc never
 * calls brk(); use mmapbytes.d there.
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
	this->brk = errno == 0 ? (arg0 == 0 ? self->req : arg0) : 0;
	this->grow = this->brk != 0 && brk_prev[pid] != 0 ?
	    this->brk - brk_prev[pid] : 0;
}

syscall::brk:return
/self->in_brk && this->grow > 0/
{
	@[ustack()] = sum(this->grow);
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
