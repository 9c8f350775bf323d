/* heaptrace.bpf.c: trace the syscalls through which a process tree takes memory from the kernel
 * (brk, mmap, mremap) and gives it back (munmap), for heaptrace's eBPF backend (bcc).
 *
 * Exact totals (calls, failures, bytes, released bytes, power-of-two buckets per kind) are kept in
 * per-CPU maps, so they stay exact whatever happens to the per-event stream. The per-event stream
 * (a ring buffer) carries each call with its registers and, optionally, a copy of the top of the user
 * stack for DWARF unwinding in user space; when it is full, the event is counted as lost.
 *
 * Processes are followed through a map of traced thread-group ids: fork children are added by the
 * sched_process_fork tracepoint (before the child first runs), new threads share their tgid, exec keeps
 * the tgid. heaptrace starts the target stopped and adds it as ARMED: counting starts at its exec.
 *
 * Settings come in as -D flags from heaptrace/backends/ebpf.py; the defaults keep this valid C alone.
 */
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>

#ifndef STACK_BYTES          /* bytes of user stack copied per event (0: none); a power of two */
#define STACK_BYTES 16384
#endif
#ifndef USER_STACK_MAP       /* 1: also walk frame pointers with the kernel's stack map */
#define USER_STACK_MAP 0
#endif
#ifndef RINGBUF_PAGES        /* per-event ring buffer size, in pages (a power of two) */
#define RINGBUF_PAGES 16384
#endif
#ifndef MAX_PROCS
#define MAX_PROCS 65536
#endif
#ifndef HAVE_GROUP_DEAD      /* sched_process_exit has group_dead (Linux 6.16 and later) */
#define HAVE_GROUP_DEAD 0
#endif
#ifndef NCPUS                /* possible CPUs: one scratch record each */
#define NCPUS 256
#endif
#ifndef KIND_MASK            /* bit i set: trace kind i (0 brk, 1 mmap, 2 munmap, 3 mremap) */
#define KIND_MASK 0xf
#endif

/* Syscall numbers, one table for every architecture heaptrace supports. */
#if defined(__x86_64__)
#define NR_MMAP 9
#define NR_MUNMAP 11
#define NR_BRK 12
#define NR_MREMAP 25
#define NR_CLONE 56
#define NR_CLONE3 435
#define REG_IP(r) ((r)->ip)
#define REG_SP(r) ((r)->sp)
#define REG_FP(r) ((r)->bp)
#define REG_LR(r) 0
#define REG_ARG0(r) ((r)->di)
#define REG_ARG1(r) ((r)->si)
#define REG_ARG2(r) ((r)->dx)
#define REG_ARG3(r) ((r)->r10)
#define REG_ARG4(r) ((r)->r8)
#define REG_ARG5(r) ((r)->r9)
#define REG_NR(r) ((r)->orig_ax)
#elif defined(__aarch64__)
#define NR_MUNMAP 215
#define NR_MREMAP 216
#define NR_CLONE 220
#define NR_MMAP 222
#define NR_BRK 214
#define NR_CLONE3 435
#define REG_IP(r) ((r)->pc)
#define REG_SP(r) ((r)->sp)
#define REG_FP(r) ((r)->regs[29])
#define REG_LR(r) ((r)->regs[30])
#define REG_ARG0(r) ((r)->orig_x0) /* x0 holds the return value at exit */
#define REG_ARG1(r) ((r)->regs[1])
#define REG_ARG2(r) ((r)->regs[2])
#define REG_ARG3(r) ((r)->regs[3])
#define REG_ARG4(r) ((r)->regs[4])
#define REG_ARG5(r) ((r)->regs[5])
#define REG_NR(r) ((r)->syscallno)
#else
#error "heaptrace: unsupported architecture"
#endif

#define KIND_BRK 0
#define KIND_MMAP 1
#define KIND_MUNMAP 2
#define KIND_MREMAP 3
#define NKINDS 4
#define NBUCKETS 64

#define REC_CALL 1
#define REC_FORK 2
#define REC_EXEC 3
#define REC_EXIT 4

#define STATE_ACTIVE 1
#define STATE_ARMED 2 /* the target between fork and its exec: not counted yet */

#define CTR_LOST 0          /* events not delivered on the ring buffer */
#define CTR_STACK_SHORT 1   /* stack copies shorter than STACK_BYTES (top of stack reached) */
#define CTR_STACK_FAIL 2    /* stack copies that failed entirely */
#define CTR_PROCS_FULL 3    /* children not followed because the process map was full */
#define NCOUNTERS 4

struct kind_totals {
    u64 calls;
    u64 failed;
    u64 bytes;
    u64 released;
};

struct call_rec {
    u32 type;
    u32 kind;
    u64 ts;
    u32 pid;
    u32 tid;
    u64 args[6];
    s64 ret;
    s64 size;
    u64 ip;
    u64 sp;
    u64 fp;
    u64 lr;
    s32 stack_id;
    u32 stack_len;
    /* twice the copy size, so the verifier can bound the piecewise copy below */
    u8 stack[STACK_BYTES > 0 ? 2 * STACK_BYTES : 8];
};

struct proc_rec {
    u32 type;
    u32 pid;
    u64 ts;
    u32 ppid;
    s32 code;
    char comm[TASK_COMM_LEN];
    char filename[256];
};

BPF_HASH(traced, u32, u8, MAX_PROCS);
BPF_HASH(breaks, u32, u64, MAX_PROCS);
BPF_HASH(clone_flags, u32, u64, MAX_PROCS);
BPF_PERCPU_ARRAY(totals, struct kind_totals, NKINDS);
BPF_PERCPU_ARRAY(buckets, u64, NKINDS * NBUCKETS);
BPF_PERCPU_ARRAY(counters, u64, NCOUNTERS);
/* Too big for a per-CPU map value (32 KiB limit): one slot per CPU in a plain array instead. */
BPF_ARRAY(scratch, struct call_rec, NCPUS);
BPF_PERCPU_ARRAY(proc_scratch, struct proc_rec, 1);
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
#if USER_STACK_MAP
BPF_STACK_TRACE(stacks, 65536);
#endif

static __always_inline void count(int counter)
{
    u64 *c = counters.lookup(&counter);
    if (c)
        (*c)++;
}

static __always_inline int kind_of(u64 nr)
{
    int kind = -1;
    if (nr == NR_BRK)
        kind = KIND_BRK;
    else if (nr == NR_MMAP)
        kind = KIND_MMAP;
    else if (nr == NR_MUNMAP)
        kind = KIND_MUNMAP;
    else if (nr == NR_MREMAP)
        kind = KIND_MREMAP;
    if (kind < 0 || !((KIND_MASK >> kind) & 1))
        return -1;
    return kind;
}

static __always_inline int is_traced(u32 tgid)
{
    u8 *state = traced.lookup(&tgid);
    return state && *state == STATE_ACTIVE;
}

static __always_inline int is_error(s64 ret)
{
    return ret < 0 && ret >= -4095;
}

/* The byte delta a successful call stands for (see ARCHITECTURE.md); 0 for a failure. */
static __always_inline s64 call_size(int kind, u32 tgid, u64 *args, s64 ret, u64 *failed)
{
    if (kind == KIND_BRK) {
        u64 *prev = breaks.lookup(&tgid);
        u64 now = (u64)ret;
        /* brk answers with the current break; asking for a break it cannot set is a failure */
        if (args[0] != 0 && now != args[0])
            *failed = 1;
        if (!prev) {
            breaks.update(&tgid, &now);
            return 0;
        }
        s64 delta = (s64)(now - *prev);
        *prev = now;
        return delta;
    }
    if (is_error(ret)) {
        *failed = 1;
        return 0;
    }
    if (kind == KIND_MREMAP)
        return (s64)(args[2] - args[1]);
    return (s64)args[1];
}

static __always_inline void add_totals(int kind, s64 size, u64 failed)
{
    u32 k = kind;
    struct kind_totals *t = totals.lookup(&k);
    if (!t)
        return;
    t->calls++;
    t->failed += failed;
    /* munmap gives bytes back: its length is its "bytes"; shrinks of brk/mremap are "released" */
    if (size < 0) {
        t->released += -size;
        return;
    }
    if (size == 0)
        return;
    t->bytes += size;
    u32 slot = kind * NBUCKETS + bpf_log2l(size) - 1; /* bcc numbers slots from 1 */
    u64 *b = buckets.lookup(&slot);
    if (b)
        (*b)++;
}

/* Copy the top of the user stack. A read running past the top of the stack mapping fails whole,
 * so when the full copy fails, copy the largest readable prefix in decreasing power-of-two pieces. */
static __always_inline u32 copy_stack(struct call_rec *rec, u64 sp)
{
#if STACK_BYTES > 0
    if (bpf_probe_read_user(rec->stack, STACK_BYTES, (void *)sp) == 0)
        return STACK_BYTES;
    u32 off = 0;
#pragma unroll
    for (int shift = 15; shift >= 3; shift--) {
        u32 piece = 1u << shift;
        if (piece < STACK_BYTES && off + piece <= STACK_BYTES &&
            bpf_probe_read_user(&rec->stack[off & (STACK_BYTES - 1)], piece, (void *)(sp + off)) == 0)
            off += piece;
    }
    count(off ? CTR_STACK_SHORT : CTR_STACK_FAIL);
    return off;
#else
    return 0;
#endif
}

static __always_inline void emit_call(void *ctx, struct pt_regs *regs, int kind, u64 pid_tgid,
                                      u64 *args, s64 ret, s64 size)
{
    u32 cpu = bpf_get_smp_processor_id();
    struct call_rec *rec = scratch.lookup(&cpu);
    if (!rec)
        return;
    rec->type = REC_CALL;
    rec->kind = kind;
    rec->ts = bpf_ktime_get_ns();
    rec->pid = pid_tgid >> 32;
    rec->tid = (u32)pid_tgid;
#pragma unroll
    for (int i = 0; i < 6; i++)
        rec->args[i] = args[i];
    rec->ret = ret;
    rec->size = size;
    rec->ip = REG_IP(regs);
    rec->sp = REG_SP(regs);
    rec->fp = REG_FP(regs);
    rec->lr = REG_LR(regs);
#if USER_STACK_MAP
    rec->stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
#else
    rec->stack_id = -1;
#endif
    rec->stack_len = copy_stack(rec, rec->sp);
    u32 len = offsetof(struct call_rec, stack) + (rec->stack_len & (STACK_BYTES > 0 ? 2 * STACK_BYTES - 1 : 0));
    if (events.ringbuf_output(rec, len, 0) != 0)
        count(CTR_LOST);
}

RAW_TRACEPOINT_PROBE(sys_exit)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    u64 nr = 0;
    bpf_probe_read_kernel(&nr, sizeof(nr), &REG_NR(regs));
    int kind = kind_of(nr);
    if (kind < 0)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!is_traced(tgid))
        return 0;

    /* The saved user registers still hold the arguments at exit. */
    struct pt_regs r = {};
    bpf_probe_read_kernel(&r, sizeof(r), regs);
    u64 args[6] = {REG_ARG0(&r), REG_ARG1(&r), REG_ARG2(&r),
                   REG_ARG3(&r), REG_ARG4(&r), REG_ARG5(&r)};
    s64 ret = (s64)ctx->args[1];
    u64 failed = 0;
    s64 size = call_size(kind, tgid, args, ret, &failed);
    add_totals(kind, size, failed);
    emit_call(ctx, &r, kind, pid_tgid, args, ret, size);
    return 0;
}

/* Remember clone flags so that the fork tracepoint can tell a new process from a new thread. */
RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 nr = ctx->args[1];
    if (nr != NR_CLONE && nr != NR_CLONE3)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_traced(pid_tgid >> 32))
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    u64 flags = 0;
    if (nr == NR_CLONE) {
        bpf_probe_read_kernel(&flags, sizeof(flags), &REG_ARG0(regs));
    } else {
        u64 uargs = 0;
        bpf_probe_read_kernel(&uargs, sizeof(uargs), &REG_ARG0(regs));
        bpf_probe_read_user(&flags, sizeof(flags), (void *)uargs); /* clone_args.flags */
    }
    u32 tid = (u32)pid_tgid;
    clone_flags.update(&tid, &flags);
    return 0;
}

static __always_inline struct proc_rec *proc_record(u32 type, u32 pid)
{
    u32 zero = 0;
    struct proc_rec *rec = proc_scratch.lookup(&zero);
    if (!rec)
        return 0;
    rec->type = type;
    rec->pid = pid;
    rec->ts = bpf_ktime_get_ns();
    rec->ppid = 0;
    rec->code = 0;
    rec->filename[0] = 0;
    bpf_get_current_comm(&rec->comm, sizeof(rec->comm));
    return rec;
}

static __always_inline void emit_proc(struct proc_rec *rec)
{
    if (events.ringbuf_output(rec, sizeof(*rec), 0) != 0)
        count(CTR_LOST);
}

/* Runs in the parent before the child is first scheduled, so the child misses nothing. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!is_traced(tgid))
        return 0;
    u32 tid = (u32)pid_tgid;
    u64 *flags = clone_flags.lookup(&tid);
    int thread = flags && (*flags & CLONE_THREAD);
    clone_flags.delete(&tid);
    if (thread)
        return 0;
    u32 child = args->child_pid;
    u8 active = STATE_ACTIVE;
    if (traced.update(&child, &active) != 0) {
        count(CTR_PROCS_FULL);
        return 0;
    }
    u64 *brk = breaks.lookup(&tgid); /* the child starts with its parent's break */
    if (brk) {
        u64 inherited = *brk;
        breaks.update(&child, &inherited);
    }
    struct proc_rec *rec = proc_record(REC_FORK, child);
    if (!rec)
        return 0;
    rec->ppid = tgid;
    emit_proc(rec);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u8 *state = traced.lookup(&tgid);
    if (!state)
        return 0;
    *state = STATE_ACTIVE;
    breaks.delete(&tgid); /* a new address space: its first brk answer is the new base */
    struct proc_rec *rec = proc_record(REC_EXEC, tgid);
    if (!rec)
        return 0;
    TP_DATA_LOC_READ_STR(rec->filename, filename, sizeof(rec->filename));
    emit_proc(rec);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!traced.lookup(&tgid))
        return 0;
    u32 tid = (u32)pid_tgid;
    clone_flags.delete(&tid);
#if HAVE_GROUP_DEAD
    if (!args->group_dead)
        return 0;
#else
    if (tid != tgid)
        return 0;
#endif
    traced.delete(&tgid);
    breaks.delete(&tgid);
    struct proc_rec *rec = proc_record(REC_EXIT, tgid);
    if (!rec)
        return 0;
    emit_proc(rec);
    return 0;
}
