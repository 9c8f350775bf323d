#!/usr/sbin/dtrace -qs
/*
 * heaptrace-signals.d: the signal that ends the target, for heaptrace-events.d
 * (`heaptrace run` adds it on illumos and macOS). It is a script of its own
 * because DTrace for Linux builds proc:::signal-send on fbt, i.e. kprobes: on a
 * kernel without them it cannot enable the probe and fails the whole program,
 * which would stop heaptrace-events.d from running at all. Run the two
 * together where the probe works:
 *
 *	dtrace -x evaltime=exec -qs heaptrace-events.d -s heaptrace-signals.d -c 'CMD ARGS' -o out.events
 *
 * Output: proc signal PID SIGNAL, as heaptrace-events.d documents it.
 */

#pragma D option quiet

proc:::signal-send
/args[1]->pr_pid == $target/
{
	printf("proc signal %d %d\n", args[1]->pr_pid, args[2]);
}
