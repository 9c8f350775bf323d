/* heaptrace.bpf.c: trace the syscalls through which a process tree takes memory from the kernel
 * (brk, mmap, mremap, mprotect) and gives it back (munmap, madvise), for heaptrace's eBPF backend
 * (bcc).
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
 * What each page of a traced address space is (committed, reserved, file, shared: ranges.h) is followed
 * from the mapping calls themselves, so that an mprotect can say whether it committed reserved memory.
 * Applying a change to those ranges is a program of its own (range_stage), verified once: sys_exit
 * hands a call over to it by tail call, and it hands the call on to call_stage, which counts and sends
 * it; sys_enter hands munmap over too (its ranges go before another thread can map the same pages).
 *
 * In a process that runs CPython (user space says where its runtime is, and the layout of its
 * version), call_stage hands the call on to py_frames, which adds the calling thread's Python frame
 * chain (a third program, so that the verifier checks the Python walk apart from the native one).
 *
 * Settings come in as -D flags from heaptrace/backends/ebpf.py; the defaults keep this valid C alone.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/sched.h> /* CLONE_THREAD; the kernel-internal linux/sched.h costs 0.4 s of clang */

#include "heaptrace.h" /* records and constants shared with user space */
#include "ranges.h"    /* what each page of an address space is */

/* Every read of user or kernel memory goes through these two: as it compiles, bcc looks each
 * call site of a bpf_probe_read_* helper up in the kernel's symbols, 30-40 ms a site (half a
 * second for the probe's twenty), where one call site each costs it once. */
static __always_inline long read_user(void *dst, u32 size, const void *src)
{
    return bpf_probe_read_user(dst, size, src);
}

static __always_inline long read_kernel(void *dst, u32 size, const void *src)
{
    return bpf_probe_read_kernel(dst, size, src);
}

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
#ifndef FLUSH_NS             /* a partial batch older than this goes out with the next call */
#define FLUSH_NS 50000000ULL
#endif
#ifndef MAX_RULES
#define MAX_RULES 262144
#endif
#ifndef RELEARN_NS           /* at most one stack copy per unknown PC per this interval */
#define RELEARN_NS 2000000ULL
#endif
#ifndef EXEC_RANGES          /* executable ranges remembered per process (to see one reused) */
#define EXEC_RANGES 256
#endif
#ifndef PROT_EXEC
#define PROT_EXEC 0x4
#endif
#ifndef KIND_MASK            /* bit i set: trace kind i (KIND_* in heaptrace.h) */
#define KIND_MASK 0x7f
#endif
#ifndef LOCK_TRIES           /* attempts at taking an address space's ranges before giving up */
#define LOCK_TRIES 200
#endif

/* mmap flags and protection (uapi mman.h); the same on every architecture heaptrace supports */
#define MAP_SHARED 0x01
#define MAP_TYPE 0x0f
#define MAP_PRIVATE 0x02
#define MAP_ANONYMOUS 0x20
#define PROT_ACCESS 0x7      /* PROT_READ | PROT_WRITE | PROT_EXEC: none of them is PROT_NONE */
#define MREMAP_DONTUNMAP 4
#define PAGE_UP(x) (((x) + 4095ULL) & ~4095ULL)

/* Syscall numbers, one table for every architecture heaptrace supports. */
#if defined(__x86_64__)
#define NR_MMAP 9
#define NR_MUNMAP 11
#define NR_BRK 12
#define NR_MREMAP 25
#define NR_MADVISE 28
#define NR_MPROTECT 10
#define NR_CLONE 56
#define NR_CLONE3 435
#define NR_OPEN_PATH 2
#define NR_OPENAT 257
#define NR_OPENAT2 437
#define NR_EXECVE 59
#define NR_EXECVEAT 322
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
#define NR_MADVISE 233
#define NR_MPROTECT 226
#define NR_MMAP 222
#define NR_BRK 214
#define NR_CLONE3 435
#define NR_OPEN_PATH 0xffffffff /* aarch64 has only openat */
#define NR_OPENAT 56
#define NR_OPENAT2 437
#define NR_EXECVE 221
#define NR_EXECVEAT 281
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

struct fd_key {
    u32 tgid;
    s32 fd;
};

struct path_val {
    char path[PATH_BYTES];
};

struct copy_seen {
    u64 ts;
    u64 id;
};

/* A traced call on its way from sys_exit through range_stage to call_stage. */
struct call_job {
    u64 pid_tgid;
    u64 args[6];
    s64 ret;
    s64 size;
    u32 kind;       /* KIND_*, or -1: only the ranges change (a kind not traced, munmap's entry) */
    u32 cls;
    u32 failed;
    u32 nops;       /* changes of the ranges to apply first: 0, 1 or 2 (mremap) */
    u32 next;       /* the next of them */
    u32 pad;
    struct paint ops[2];
};

#define STAGE_RANGES 0
#define STAGE_CALL 1
#define STAGE_PY 2 /* the Python frames of a call (py_frames) */
#define NSTAGES 3

struct py_frame_head {
    u8 bytes[PY_FRAME_BYTES];
};

#ifndef PAGE_BYTES           /* the user stack's page size (a stack-growing fault's copy skips one) */
#define PAGE_BYTES 4096
#endif

struct zero_page {
    u8 b[PAGE_BYTES];
};

/* The executable ranges a process has mapped since its exec. A new executable mapping over one of
 * them (dlclose, then dlopen of another file at the same place) makes the rules learned there
 * wrong for the new code, so the process's rule generation moves on. No entry: the history is
 * not known (a process traced with -p, or more ranges than fit), and every executable mapping
 * moves it on. Ranges are never removed (unmaps are not matched), only replaced when reused. */
struct exec_ranges {
    u32 n;
    u32 pad;
    u64 start[EXEC_RANGES];
    u64 end[EXEC_RANGES];
};

/* The maps: key -> value; who writes; who reads. */
/* tgid -> STATE_*; user space (arm, attach) and the fork/exec/exit tracepoints; every probe */
BPF_HASH(traced, u32, u8, MAX_PROCS);
/* tgid -> when it was forked (none: traced from the start); sched_process_fork, exit; the stack
 * hashes (process_seed): a later process with an exited one's pid never shares its references,
 * so user space drops an exited process's stacks for good */
BPF_HASH(births, u32, u64, MAX_PROCS);
/* (tgid, fd) -> path the fd opened; openat exits; executable mmaps (note_exec_mapping) */
BPF_TABLE("lru_hash", struct fd_key, struct path_val, fd_paths, 16384);
/* scratch for one mapfile_rec (too big for the BPF stack); the probe alone */
BPF_PERCPU_ARRAY(mapfile_scratch, struct mapfile_rec, 1);
/* tgid -> current break; brk exits, fork (inherited), exec/exit (reset); call_size */
BPF_HASH(breaks, u32, u64, MAX_PROCS);
/* tgid -> what each page of its address space is; range_stage, fork (copied), exec/exit (dropped),
 * user space (attach: what was mapped before) */
BPF_F_TABLE("hash", u32, struct range_set, ranges, MAX_PROCS, BPF_F_NO_PREALLOC);
/* 0 -> an empty set, to start one from; never written */
BPF_ARRAY(no_ranges, struct range_set, 1);
/* 0 -> the call being handed from stage to stage on this CPU; sys_enter, sys_exit, the stages */
BPF_PERCPU_ARRAY(jobs, struct call_job, 1);
/* STAGE_* -> program; user space */
BPF_PROG_ARRAY(stages, NSTAGES);
/* kind * (CLASS_MASK + 1) + class -> bytes (per CPU): mmap lengths and mremap growth by class */
BPF_PERCPU_ARRAY(class_bytes, u64, NKINDS * (CLASS_MASK + 1));
/* tid -> flags of its clone in flight; sys_enter; sched_process_fork (thread or process?) */
BPF_HASH(clone_flags, u32, u64, MAX_PROCS);
/* kind -> exact totals (per CPU); add_totals; user space at the end and at each checkpoint */
BPF_PERCPU_ARRAY(totals, struct kind_totals, NKINDS);
/* kind * NBUCKETS + log2 slot -> calls (per CPU); add_totals; user space (histograms) */
BPF_PERCPU_ARRAY(buckets, u64, NKINDS * NBUCKETS);
/* CTR_* -> count (per CPU); the probe; user space (drops, stack quality) */
BPF_PERCPU_ARRAY(counters, u64, NCOUNTERS);
/* 0 -> a page of zeros (never written); copy_stack */
BPF_ARRAY(zero_pages, struct zero_page, 1);
/* cpu -> scratch copy_rec: too big for a per-CPU map value (32 KiB limit); copy_rest */
BPF_ARRAY(copies, struct copy_rec, NCPUS);
/* 0 -> the CPU's batch of calls being filled; emit_call; user space drains partial ones */
BPF_PERCPU_ARRAY(batches, struct call_batch, 1);
/* 0 -> scratch stack_rec; stack_refs; the probe alone */
BPF_PERCPU_ARRAY(walks, struct stack_rec, 1);
/* 0 -> next stack-copy id on this CPU; copy_rest; the probe alone */
BPF_PERCPU_ARRAY(copy_seq, u64, 1);
/* (tgid, gen, pc) -> unwinding rule; user space (teach); walk_stack. LRU: rules of exited
 * processes cannot be deleted by tgid, so let the oldest go. */
BPF_TABLE("lru_hash", struct rule_key, struct rule, rules, MAX_RULES);
/* tgid -> rule generation; exec, an executable range reused (next_gen); walk_stack, copy_rest */
BPF_HASH(gens, u32, u32, MAX_PROCS);
/* tgid -> exec generation: the images it ran since traced (user space counts them alike); exec;
 * the Python checks (py_proc.gen). Not gens: a dlopen must not end a process's Python frames. */
BPF_HASH(exec_gens, u32, u32, MAX_PROCS);
/* tgid -> its executable ranges since exec; exec, fork (inherited), executable mmaps; the same */
BPF_F_TABLE("hash", u32, struct exec_ranges, exec_ranges, MAX_PROCS, BPF_F_NO_PREALLOC);
/* 0 -> scratch exec_ranges (too big for the BPF stack); reset_exec_ranges */
BPF_PERCPU_ARRAY(ranges_scratch, struct exec_ranges, 1);
/* stack hash -> 1 once its stack_rec was sent; send_walked; send_walked */
BPF_TABLE("lru_hash", u64, u8, sent_stacks, 65536);
/* (tgid, gen, pc^sp) -> last copy of that frame; copy_rest; copy_rest (one per RELEARN_NS) */
BPF_TABLE("lru_hash", struct rule_key, struct copy_seen, copy_sent, 16384);
/* 0 -> scratch proc_rec; proc_record; the probe alone */
BPF_PERCPU_ARRAY(proc_scratch, struct proc_rec, 1);
/* the per-event stream: REC_* records; the probe; user space (EbpfTracer) */
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
/* tgid -> where its Python runtime is and how its frames are laid out; user space (teach_python)
 * and sched_process_fork (a child inherits its parent's); py_stack_ref */
BPF_HASH(py_procs, u32, struct py_proc, MAX_PROCS);
/* tid -> its Python thread state, found once by walking the interpreter's list; py_tstate */
BPF_TABLE("lru_hash", u32, u64, py_threads, 16384);
/* (tgid, gen, code address) -> 1 once its py_code_rec was sent; py_send_codes */
BPF_TABLE("lru_hash", struct rule_key, u8, py_codes, 262144);
/* 0 -> scratch py_stack_rec; py_stack_ref */
BPF_PERCPU_ARRAY(py_stacks, struct py_stack_rec, 1);
/* 0 -> scratch py_code_rec; py_send_code */
BPF_PERCPU_ARRAY(py_code_scratch, struct py_code_rec, 1);
/* 0 -> the head of the frame being read; py_walk */
BPF_PERCPU_ARRAY(py_frame_scratch, struct py_frame_head, 1);
#if USER_STACK_MAP
/* stack id -> frame-pointer user stack; emit_call (--unwind fp); user space */
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
    else if (nr == NR_MADVISE)
        kind = KIND_MADVISE;
    else if (nr == NR_MPROTECT)
        kind = KIND_MPROTECT;
    return kind;
}

static __always_inline int is_counted(int kind)
{
    return kind >= 0 && ((KIND_MASK >> kind) & 1);
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
    if (kind == KIND_MADVISE) /* pages handed back: MADV_DONTNEED, MADV_FREE, MADV_REMOVE */
        return (args[2] == MADV_DONTNEED || args[2] == MADV_FREE || args[2] == MADV_REMOVE)
                   ? (s64)args[1] : 0;
    if (kind == KIND_MPROTECT) /* what it committed or released: range_stage says */
        return 0;
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
    /* munmap and madvise give bytes back: that length is their "bytes"; shrinks of brk/mremap
     * are "released" */
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
 * so when the full copy fails, copy the largest readable prefix in decreasing power-of-two pieces.
 * When nothing at sp can be read (a page fault growing the stack: sp's page is the one being
 * faulted in), the copy says zeros up to the next page and goes on from there, in one piece: the
 * frames unwinding needs (the faulting function's return address, its callers') are above. */
static __always_inline u32 copy_stack(struct copy_rec *rec, u64 sp)
{
#if STACK_BYTES > 0
    if (read_user(rec->stack, STACK_BYTES, (void *)sp) == 0)
        return STACK_BYTES;
    u32 off = 0;
#pragma unroll
    for (int shift = 15; shift >= 3; shift--) {
        u32 piece = 1u << shift;
        if (piece < STACK_BYTES && off + piece <= STACK_BYTES &&
            read_user(&rec->stack[off & (STACK_BYTES - 1)], piece, (void *)(sp + off)) == 0)
            off += piece;
    }
#if STACK_BYTES > 2 * PAGE_BYTES
    u32 gap = (u32)(0 - sp) & (PAGE_BYTES - 1), zero = 0;
    struct zero_page *zeros = zero_pages.lookup(&zero);
    if (off == 0 && gap && zeros && read_kernel(rec->stack, gap, zeros->b) == 0) {
#pragma unroll
        for (int shift = 13; shift >= 10; shift--) {
            u32 piece = 1u << shift;
            if (piece <= STACK_BYTES / 2 && read_user(&rec->stack[gap], piece,
                                                      (void *)(sp + gap)) == 0) {
                off = gap + piece;
                break;
            }
        }
    }
#endif
    count(off ? CTR_STACK_SHORT : CTR_STACK_FAIL);
    return off;
#else
    return 0;
#endif
}

static __always_inline u32 gen_of(u32 tgid)
{
    u32 *gen = gens.lookup(&tgid);
    return gen ? *gen : 0;
}

static __always_inline u32 exec_gen_of(u32 tgid)
{
    u32 *gen = exec_gens.lookup(&tgid);
    return gen ? *gen : 0;
}

/* Rules of the process's current generation no longer apply: relearn from stack copies. */
static __always_inline void next_gen(u32 tgid)
{
    u32 *gen = gens.lookup(&tgid);
    u32 next = gen ? *gen + 1 : 1;
    gens.update(&tgid, &next);
}

/* After a successful executable mmap: was that place executable before? (see exec_ranges) */
static __always_inline void note_exec_range(u32 tgid, u64 *args, s64 ret)
{
    if (is_error(ret) || !(args[2] & PROT_EXEC))
        return;
    u64 start = (u64)ret, end = start + args[1];
    struct exec_ranges *r = exec_ranges.lookup(&tgid);
    if (!r) {
        next_gen(tgid);
        return;
    }
    u32 n = r->n;
    for (u32 i = 0; i < EXEC_RANGES; i++) {
        if (i >= n)
            break;
        if (start < r->end[i] && r->start[i] < end) {
            r->start[i] = start;
            r->end[i] = end;
            next_gen(tgid);
            return;
        }
    }
    if (n >= EXEC_RANGES) {
        exec_ranges.delete(&tgid); /* too many to remember: unknown from now on */
        next_gen(tgid);
        return;
    }
    r->start[n & (EXEC_RANGES - 1)] = start;
    r->end[n & (EXEC_RANGES - 1)] = end;
    r->n = n + 1;
}

/* At exec, a new address space with nothing mapped by mmap yet. */
static __always_inline void reset_exec_ranges(u32 tgid)
{
    u32 zero = 0;
    struct exec_ranges *empty = ranges_scratch.lookup(&zero);
    if (!empty)
        return;
    empty->n = 0;
    exec_ranges.update(&tgid, empty);
}

/* Where a walk stopped for want of a rule: the registers of that frame. */
struct frame_regs {
    u64 pc;
    u64 sp;
    u64 fp;
    u32 depth;  /* 0: the leaf (pc is the syscall's ip), else pc is a return address */
};

/* How a walk with the learned rules ended. */
#define WALK_UNKNOWN_PC 0   /* met a PC with no rule yet: w holds the frames below it, *at its registers */
#define WALK_WHOLE 1        /* reached the outermost frame (_start, clone, thread start) */
#define WALK_CUT 2          /* a read of the stack failed, or MAX_FRAMES ran out: the stack is cut */

/* Walk the user stack with the learned per-PC rules; returns one of WALK_*. */
static __always_inline int walk_stack(u32 tgid, struct pt_regs *regs, struct stack_rec *w,
                                      struct frame_regs *at)
{
    struct rule_key key = {.tgid = tgid, .gen = gen_of(tgid)};
    u64 pc = REG_IP(regs), sp = REG_SP(regs), fp = REG_FP(regs);
    w->n = 0;
#if defined(__aarch64__)
    /* The rules are x86_64's (return address at CFA-8); aarch64's is in x30 at a leaf. Every
     * aarch64 stack is unknown at the leaf: copied whole, with lr, for user space to unwind. */
    at->pc = pc;
    at->sp = sp;
    at->fp = fp;
    at->depth = 0;
    return WALK_UNKNOWN_PC;
#endif
    for (int i = 0; i < MAX_FRAMES; i++) {
        key.pc = pc;
        struct rule *r = rules.lookup(&key);
        if (!r) {
            at->pc = pc;
            at->sp = sp;
            at->fp = fp;
            at->depth = i;
            return WALK_UNKNOWN_PC;
        }
        w->ips[i] = pc;
        w->n = i + 1;
        if (r->end)
            return WALK_WHOLE;
        u64 cfa = (r->cfa_reg ? fp : sp) + (s64)r->cfa_off;
        u64 ra = 0;
        if (r->fp_saved && read_user(&fp, sizeof(fp), (void *)(cfa + (s64)r->fp_off)))
            return WALK_CUT;
        if (read_user(&ra, sizeof(ra), (void *)(cfa - 8)))
            return WALK_CUT;
        if (ra == 0) /* the ABI's end of the frame chain */
            return WALK_WHOLE;
        sp = cfa;
        pc = ra;
    }
    return WALK_CUT;
}

/* What a stack hash starts from: the process, told apart from any other with its pid. */
static __always_inline u64 process_seed(u32 tgid)
{
    u64 *birth = births.lookup(&tgid);
    return (u64)tgid ^ (birth ? *birth * 0x9e3779b97f4a7c15ULL : 0);
}

static __always_inline u64 hash_stack(struct stack_rec *w, u32 tgid)
{
    u64 h = 0xcbf29ce484222325ULL ^ process_seed(tgid);
    for (int i = 0; i < MAX_FRAMES; i++) {
        if (i >= w->n)
            break;
        h = (h ^ w->ips[i]) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

/* Send the frames walked so far once per distinct run of frames; returns their reference. */
static __always_inline u64 send_walked(struct stack_rec *w, u32 tgid, u32 complete)
{
    if (w->n == 0)
        return 0;
    u64 h = hash_stack(w, tgid) ^ complete;
    if (!sent_stacks.lookup(&h)) {
        w->type = REC_STACK;
        w->pid = tgid;
        w->hash = h;
        w->complete = complete;
        if (events.ringbuf_output(w, sizeof(*w), 0) != 0)
            return 0;
        u8 one = 1;
        sent_stacks.update(&h, &one);
    }
    return STACK_WALKED | (h >> 1);
}

/* The rest of a stack from an unknown frame up, as a copy for user space to unwind (and to
 * learn the rules of the PCs it meets). One copy per unknown PC and stack depth per
 * RELEARN_NS: calls in between share it, as a call path repeated in a loop does. */
static __always_inline u64 copy_rest(struct frame_regs *at, struct pt_regs *regs, u32 tgid,
                                     u32 tid)
{
#if STACK_BYTES > 0
    u32 gen = gen_of(tgid);
    struct rule_key key = {.tgid = tgid, .gen = gen, .pc = at->pc ^ (at->sp << 20)};
    u64 now = bpf_ktime_get_ns();
    struct copy_seen *last = copy_sent.lookup(&key);
    if (last && now - last->ts < RELEARN_NS)
        return last->id;
    u32 cpu = bpf_get_smp_processor_id(), zero = 0;
    struct copy_rec *rec = copies.lookup(&cpu);
    u64 *seq = copy_seq.lookup(&zero);
    if (!rec || !seq)
        return 0;
    rec->type = REC_COPY;
    rec->pid = tgid;
    rec->tid = tid;
    rec->gen = gen;
    rec->depth = at->depth;
    rec->id = STACK_COPIED | ((u64)cpu << 40) | (*seq)++;
    rec->ip = at->pc;
    rec->sp = at->sp;
    rec->fp = at->fp;
    rec->lr = REG_LR(regs);
    rec->stack_len = copy_stack(rec, rec->sp);
    u32 len = offsetof(struct copy_rec, stack) + (rec->stack_len & (2 * STACK_BYTES - 1));
    if (events.ringbuf_output(rec, len, 0) != 0)
        return 0;
    count(CTR_COPIED);
    struct copy_seen seen = {.ts = now, .id = rec->id};
    copy_sent.update(&key, &seen);
    return rec->id;
#else
    return 0;
#endif
}

/* References to a user stack: the frames walked in BPF (returned), and in *rest a copy of the
 * rest when the walk met a PC without a rule (0 when the walk was whole, or cut). */
static __always_inline u64 user_stack(struct pt_regs *regs, u32 tgid, u32 tid, u64 *rest)
{
    *rest = 0;
#if STACK_BYTES > 0
    u32 zero = 0;
    struct stack_rec *w = walks.lookup(&zero);
    if (!w)
        return 0;
    struct frame_regs at = {};
    int walk = walk_stack(tgid, regs, w, &at);
    u64 ref = send_walked(w, tgid, walk == WALK_WHOLE);
    if (walk == WALK_WHOLE) {
        count(CTR_WALKED);
        return ref;
    }
    if (walk == WALK_CUT) { /* nothing left to copy: say so rather than call it whole */
        count(CTR_WALK_CUT);
        return ref;
    }
    *rest = copy_rest(&at, regs, tgid, tid);
    if (!*rest)
        count(CTR_NO_STACK);
    return ref;
#else
    return 0;
#endif
}

/* --- Python frames ---------------------------------------------------------------------- */

static __always_inline u64 read_u64(u64 addr)
{
    u64 value = 0;
    if (read_user(&value, sizeof(value), (void *)addr))
        return 0;
    return value;
}

/* The calling thread's PyThreadState: cached per thread, checked against its tid each time,
 * else found in the interpreter's list of thread states. */
static __always_inline u64 py_tstate(struct py_proc *p, u32 tid)
{
    u64 want = tid;
    if (p->task_fsbase != PY_NO_OFFSET) {
        u64 task = bpf_get_current_task();
        want = 0;
        read_kernel(&want, sizeof(want), (void *)(task + p->task_fsbase));
    }
    u64 *cached = py_threads.lookup(&tid);
    if (cached && *cached && read_u64(*cached + p->tstate_tid) == want)
        return *cached;
    u64 interp = read_u64(p->runtime + p->interpreters_head);
    u64 ts = interp ? read_u64(interp + p->threads_head) : 0;
    for (int i = 0; i < PY_MAX_THREADS; i++) {
        if (!ts)
            break;
        if (read_u64(ts + p->tstate_tid) == want) {
            py_threads.update(&tid, &ts);
            return ts;
        }
        ts = read_u64(ts + p->tstate_next);
    }
    return 0;
}

static __always_inline u64 head_u64(struct py_frame_head *h, u32 off)
{
    return *(u64 *)&h->bytes[off & (PY_FRAME_BYTES - 8)];
}

/* Walk the frame chain from `frame`, leaf first, into w (and hash it), for one layout `kind`
 * (a constant once inlined: no branch on it in the loop, which would keep the verifier from
 * pruning). A shim frame of 3.12+ (the C stack's, between two eval calls) is kept as
 * code 0 | PY_ENTRY: it closes the frames of the eval call before it. Returns PY_CUT when the
 * chain goes on beyond MAX_PY_FRAMES or a read fails. */
static __always_inline u32 py_walk_kind(struct py_proc *p, u64 frame, struct py_stack_rec *w,
                                        struct py_frame_head *h, const u32 kind)
{
    u32 code_off = p->frame_code, instr_off = p->frame_instr, prev_off = p->frame_previous;
    u32 scope_off = p->frame_globals;
    u32 entry_off = p->frame_entry & (PY_FRAME_BYTES - 1);
    u64 hash = w->hash;
    u32 cut = 0, i = 0;
    for (i = 0; i < MAX_PY_FRAMES; i++) {
        if (!frame)
            break;
        if (read_user(h->bytes, PY_FRAME_BYTES, (void *)frame)) {
            cut = PY_CUT;
            break;
        }
        u64 code = head_u64(h, code_off);
        u64 instr = head_u64(h, instr_off);
        u64 scope = head_u64(h, scope_off);
        u8 mark = h->bytes[entry_off];
        frame = head_u64(h, prev_off);
        u64 entry = 1;
        if (kind == PY_FRAMES_IS_ENTRY)
            entry = mark != 0;
        if (kind == PY_FRAMES_SHIM) {
            entry = mark == PY_OWNED_BY_CSTACK;
            code = entry ? 0 : code;
        }
        code |= entry;
        w->codes[i] = code;
        w->instrs[i] = instr;
        w->scopes[i] = scope;
        hash = (hash ^ code) * 0x100000001b3ULL;
        hash = (hash ^ instr) * 0x100000001b3ULL;
        hash = (hash ^ scope) * 0x100000001b3ULL;
        hash ^= hash >> 29;
    }
    w->n = i;
    w->hash = hash;
    return (i == MAX_PY_FRAMES && frame) ? PY_CUT : cut;
}

static __always_inline u32 py_walk(struct py_proc *p, u64 tstate, struct py_stack_rec *w,
                                   u32 tgid)
{
    u32 zero = 0;
    struct py_frame_head *h = py_frame_scratch.lookup(&zero);
    w->n = 0;
    w->hash = 0x84222325cbf29ce4ULL ^ process_seed(tgid);
    if (!h)
        return PY_CUT;
    u64 frame = read_u64(tstate + p->tstate_frame);
    if (frame && p->cframe_frame != PY_NO_OFFSET)
        frame = read_u64(frame + p->cframe_frame);
    if (p->frames == PY_FRAMES_OBJECT)
        return py_walk_kind(p, frame, w, h, PY_FRAMES_OBJECT);
    if (p->frames == PY_FRAMES_IS_ENTRY)
        return py_walk_kind(p, frame, w, h, PY_FRAMES_IS_ENTRY);
    return py_walk_kind(p, frame, w, h, PY_FRAMES_SHIM);
}

/* Copy the readable prefix of `size` bytes at src: an object near the end of its mapping
 * cannot be read whole, its first quarter (a str's head and some text) usually can. */
static __always_inline void read_prefix(u8 *dst, u32 size, u64 src)
{
    if (read_user(dst, size, (void *)src) != 0)
        read_user(dst, size / 4, (void *)src);
}

static __always_inline u64 code_u64(struct py_code_rec *rec, u32 off)
{
    return *(u64 *)&rec->head[off & (PY_CODE_BYTES - 8)];
}

/* Send one code object: its head, its names, its file name and line table. */
static __always_inline int py_send_code(struct py_proc *p, u32 tgid, u64 code, u64 scope)
{
    u32 zero = 0;
    struct py_code_rec *rec = py_code_scratch.lookup(&zero);
    if (!rec)
        return -1;
    rec->type = REC_PYCODE;
    rec->pid = tgid;
    rec->ts = bpf_ktime_get_ns();
    rec->code = code;
    rec->scope = scope;
    rec->gen = p->gen;
    if (read_user(rec->head, PY_CODE_BYTES, (void *)code))
        return -1;
    read_prefix(rec->name, PY_NAME_BYTES, code_u64(rec, p->code_name));
    rec->qualname[0] = 0;
    if (p->code_qualname != PY_NO_OFFSET)
        read_prefix(rec->qualname, PY_NAME_BYTES, code_u64(rec, p->code_qualname));
    read_prefix(rec->filename, PY_FILE_BYTES, code_u64(rec, p->code_filename));
    u64 lines = code_u64(rec, p->code_linetable);
    u64 len = read_u64(lines + 16) + 32; /* PyBytesObject: ob_size at 16, the bytes at 32 */
    if (len > PY_LINES_BYTES - 1)
        len = PY_LINES_BYTES - 1;
    rec->lines_len = 0;
    if (lines && read_user(rec->lines, len & (PY_LINES_BYTES - 1), (void *)lines) == 0)
        rec->lines_len = len;
    u32 size = offsetof(struct py_code_rec, lines) + (rec->lines_len & (PY_LINES_BYTES - 1));
    if (events.ringbuf_output(rec, size, 0) != 0)
        return -1;
    count(CTR_PY_CODES);
    return 0;
}

/* What names a code object in py_codes: its address and its frame's globals. */
static __always_inline u64 code_key(u64 code, u64 scope)
{
    return (code & ~PY_ENTRY) ^ (scope << 17) ^ (scope >> 47);
}

/* The index of the first code object of w not sent yet, or -1. A loop with no state but
 * its index: the verifier walks it in linear time. */
static __always_inline int py_first_unsent(struct rule_key *key, struct py_stack_rec *w)
{
    for (int i = 0; i < MAX_PY_FRAMES; i++) {
        if (i >= w->n)
            break;
        u64 code = w->codes[i] & ~PY_ENTRY;
        key->pc = code_key(code, w->scopes[i]);
        if (code && !py_codes.lookup(key))
            return i;
    }
    return -1;
}

/* Send the code objects of w not sent yet, at most PY_CODES_PER_EVENT of them; 1 when all
 * are sent. */
static __always_inline int py_send_codes(struct py_proc *p, u32 tgid, struct py_stack_rec *w)
{
    struct rule_key key = {.tgid = tgid, .gen = p->gen};
    u8 one = 1;
    for (int round = 0; round < PY_CODES_PER_EVENT; round++) {
        int i = py_first_unsent(&key, w);
        if (i < 0)
            return 1;
        u64 code = w->codes[i & (MAX_PY_FRAMES - 1)] & ~PY_ENTRY;
        u64 scope = w->scopes[i & (MAX_PY_FRAMES - 1)];
        if (py_send_code(p, tgid, code, scope) != 0)
            return 0;
        key.pc = code_key(code, scope);
        py_codes.update(&key, &one);
    }
    return py_first_unsent(&key, w) < 0;
}

/* The Python frames of the calling thread: sent once per distinct chain (with the code
 * objects first seen in it); returns the call's py_ref, or 0. */
static __always_inline u64 py_stack_ref(struct py_proc *p, u32 tgid, u32 tid)
{
    u64 tstate = py_tstate(p, tid);
    if (!tstate) {
        count(CTR_PY_NO_THREAD);
        return 0;
    }
    u32 zero = 0;
    struct py_stack_rec *w = py_stacks.lookup(&zero);
    if (!w)
        return 0;
    w->flags = py_walk(p, tstate, w, tgid);
    if (w->flags & PY_CUT)
        count(CTR_PY_CUT);
    if (w->n == 0)
        return 0;
    count(CTR_PY_STACKS);
    u64 h = w->hash ^ w->flags;
    w->hash = h;
    if (!sent_stacks.lookup(&h)) {
        int all = py_send_codes(p, tgid, w);
        w->type = REC_PYSTACK;
        w->pid = tgid;
        if (events.ringbuf_output(w, sizeof(*w), 0) != 0)
            return 0;
        u8 one = 1;
        if (all) /* else sent again, with the codes still missing, next time */
            sent_stacks.update(&h, &one);
    }
    return PY_STACK | (h >> 3);
}

/* The call just put in this CPU's batch, for the program that adds its Python frames. */
struct py_pending {
    u32 tgid;
    u32 tid;
    u32 slot;
};
/* 0 -> the call waiting for its Python frames; emit_call; py_frames */
BPF_PERCPU_ARRAY(py_pendings, struct py_pending, 1);

static __always_inline void finish_call(struct call_batch *b, u32 slot, u64 now);

static __always_inline void emit_call(void *ctx, struct pt_regs *regs, int kind, u64 pid_tgid,
                                      u64 *args, s64 ret, s64 size, u32 cls)
{
    u32 zero = 0;
    struct call_batch *b = batches.lookup(&zero);
    if (!b)
        return;
    u32 i = b->n;
    if (i >= BATCH)
        i = 0;
    u64 now = bpf_ktime_get_ns();
    if (i == 0)
        b->first_ts = now;
    struct call_rec *rec = &b->recs[i & (BATCH - 1)];
    u32 tgid = pid_tgid >> 32;
    rec->kind = kind;
    rec->ts = now;
    rec->pid = tgid;
    rec->tid = (u32)pid_tgid;
#pragma unroll
    for (int j = 0; j < 6; j++)
        rec->args[j] = args[j];
    rec->ret = ret;
    rec->size = size;
    rec->cls = cls;
    rec->pad = 0;
    rec->ip = REG_IP(regs);
#if USER_STACK_MAP
    rec->stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
#else
    rec->stack_id = -1;
#endif
    u64 rest = 0;
    rec->stack_ref = user_stack(regs, tgid, (u32)pid_tgid, &rest);
    rec->rest_ref = rest;
    rec->py_ref = 0;
    struct py_proc *py = py_procs.lookup(&tgid);
    struct py_pending *pending = py_pendings.lookup(&zero);
    if (py && pending && py->runtime && py->gen == exec_gen_of(tgid)) {
        pending->tgid = tgid;
        pending->tid = (u32)pid_tgid;
        pending->slot = i;
        stages.call(ctx, STAGE_PY); /* does not come back unless it failed */
    }
    finish_call(b, i, now);
}

/* Count the call just filled in at `slot` and send the batch when it is full or old. */
static __always_inline void finish_call(struct call_batch *b, u32 slot, u64 now)
{
    u32 zero = 0;
    b->n = slot + 1;
    if (b->n < BATCH && now - b->first_ts < FLUSH_NS)
        return;
    b->type = REC_BATCH;
    u32 len = offsetof(struct call_batch, recs) + (b->n & (2 * BATCH - 1)) * sizeof(struct call_rec);
    if (len > sizeof(*b))
        len = sizeof(*b);
    if (events.ringbuf_output(b, len, 0) != 0) {
        u64 *lost = counters.lookup(&zero);
        if (lost)
            *lost += b->n;
    }
    b->n = 0;
}

/* Tail-called by emit_call for a process running Python: the thread's Python frames for the
 * call waiting in this CPU's batch, then the rest of emit_call. */
int py_frames(struct bpf_raw_tracepoint_args *ctx)
{
    u32 zero = 0;
    struct py_pending *pending = py_pendings.lookup(&zero);
    struct call_batch *b = batches.lookup(&zero);
    if (!pending || !b)
        return 0;
    u32 slot = pending->slot & (BATCH - 1);
    struct call_rec *rec = &b->recs[slot];
    struct py_proc *p = py_procs.lookup(&pending->tgid);
    if (p)
        rec->py_ref = py_stack_ref(p, pending->tgid, pending->tid);
    finish_call(b, slot, rec->ts);
    return 0;
}

#include "resident.h" /* RSS and resident growth, from the kernel's own counters */

static __always_inline int is_open(u64 nr)
{
    return nr == NR_OPENAT || nr == NR_OPEN_PATH || nr == NR_OPENAT2;
}

/* Remember which file each descriptor of a traced process opened. */
static __always_inline void note_open(u32 tgid, u64 nr, u64 *args, s64 ret)
{
    u32 zero = 0;
    struct mapfile_rec *m = mapfile_scratch.lookup(&zero);
    if (ret < 0 || !m)
        return;
    u64 path = args[1], first = args[0]; /* openat(dirfd, path, ...), openat2 too */
    asm volatile("" : "+r"(path), "+r"(first)); /* keep the verifier off a computed offset */
    if (nr == NR_OPEN_PATH)
        path = first;
    if (bpf_probe_read_user_str(m->path, sizeof(m->path), (const char *)path) <= 0)
        return;
    struct fd_key key = {.tgid = tgid, .fd = (s32)ret};
    fd_paths.update(&key, (struct path_val *)m->path);
}

/* A successful mmap of an opened file with PROT_EXEC: send where it went. */
static __always_inline void note_exec_mapping(u32 tgid, u64 *args, s64 ret)
{
    if (is_error(ret) || !(args[2] & PROT_EXEC) || (s32)args[4] < 0)
        return;
    struct fd_key key = {.tgid = tgid, .fd = (s32)args[4]};
    struct path_val *path = fd_paths.lookup(&key);
    u32 zero = 0;
    struct mapfile_rec *m = mapfile_scratch.lookup(&zero);
    struct py_proc *py = py_procs.lookup(&tgid);
    if (py && !py->runtime && py->wait_len && args[1] == py->wait_len &&
        args[5] == py->wait_pgoff && py->gen == exec_gen_of(tgid))
        py->runtime = (u64)ret + py->wait_delta; /* libpython's code, as user space expects it */
    if (!path || !m)
        return;
    m->type = REC_MAPFILE;
    m->pid = tgid;
    m->ts = bpf_ktime_get_ns();
    m->addr = (u64)ret;
    m->len = args[1];
    m->pgoff = args[5];
    read_kernel(m->path, sizeof(m->path), path->path);
    if (events.ringbuf_output(m, sizeof(*m), 0) != 0)
        count(CTR_LOST);
}

/* The class of a successful mmap from its flags and protection. */
static __always_inline u32 mmap_class(u64 prot, u64 flags)
{
    if (!(flags & MAP_ANONYMOUS))
        return CLASS_FILE;
    if ((flags & MAP_TYPE) != MAP_PRIVATE)
        return CLASS_SHARED;
    return (prot & PROT_ACCESS) ? CLASS_COMMITTED : CLASS_RESERVED;
}

static __always_inline void fill_op(struct paint *op, u64 start, u64 len, u64 cls)
{
    op->start = start;
    op->end = start + PAGE_UP(len);
    op->mode = PAINT_FILL;
    op->fill = cls;
}

/* An mprotect's change: reserved and committed pages take the new protection's class (file and
 * shared ones stay what they are). `keep` instead leaves every page as it is (to count them). */
static __always_inline void relabel_op(struct paint *op, u64 start, u64 len, u64 cls, int keep)
{
    op->start = start;
    op->end = start + PAGE_UP(len);
    op->mode = PAINT_RELABEL;
#pragma unroll
    for (int c = 0; c <= CLASS_MASK; c++)
        op->to[c] = c;
    if (!keep) {
        op->to[CLASS_COMMITTED] = cls;
        op->to[CLASS_RESERVED] = cls;
    }
}

/* How a successful call changes the ranges of its address space: the number of changes. */
static __always_inline u32 range_ops(struct call_job *job, u64 nr, s64 ret)
{
    u64 *a = job->args;
    if (nr == NR_MMAP) {
        job->cls = mmap_class(a[2], a[3]);
        fill_op(&job->ops[0], (u64)ret, a[1], job->cls);
        return 1;
    }
    if (nr == NR_MPROTECT) {
        relabel_op(&job->ops[0], a[0], a[1],
                   (a[2] & PROT_ACCESS) ? CLASS_COMMITTED : CLASS_RESERVED, 0);
        return 1;
    }
    if (nr == NR_MREMAP) { /* the old range goes (its class decides the new one's), the new comes */
        if (a[3] & MREMAP_DONTUNMAP)
            relabel_op(&job->ops[0], a[0], a[1], 0, 1);
        else
            fill_op(&job->ops[0], a[0], a[1], CLASS_NONE);
        fill_op(&job->ops[1], (u64)ret, a[2], CLASS_NONE);
        return 2;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(sys_exit)
{
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    u64 nr = 0;
    read_kernel(&nr, sizeof(nr), &REG_NR(regs));
    int kind = kind_of(nr);
    int open = is_open(nr);
    if (kind < 0 && !open)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!is_traced(tgid))
        return 0;

    /* The saved user registers still hold the arguments at exit. */
    struct pt_regs r = {};
    read_kernel(&r, sizeof(r), regs);
    u64 args[6] = {REG_ARG0(&r), REG_ARG1(&r), REG_ARG2(&r),
                   REG_ARG3(&r), REG_ARG4(&r), REG_ARG5(&r)};
    s64 ret = (s64)ctx->args[1];
    if (open) {
        note_open(tgid, nr, args, ret);
        return 0;
    }
    if (nr == NR_MMAP) {
        note_exec_range(tgid, args, ret);
        note_exec_mapping(tgid, args, ret);
    }
    u32 zero = 0;
    struct call_job *job = jobs.lookup(&zero);
    if (!job)
        return 0;
    u64 failed = 0;
    job->pid_tgid = pid_tgid;
#pragma unroll
    for (int j = 0; j < 6; j++)
        job->args[j] = args[j];
    job->ret = ret;
    job->kind = is_counted(kind) ? kind : -1;
    job->size = job->kind != -1 ? call_size(kind, tgid, args, ret, &failed) : 0;
    job->failed = failed;
    job->cls = kind == KIND_BRK ? CLASS_COMMITTED : CLASS_NONE;
    job->nops = (failed || is_error(ret)) ? 0 : range_ops(job, nr, ret);
    job->next = 0;
    if (job->nops)
        stages.call(ctx, STAGE_RANGES);
    else if (job->kind != -1)
        stages.call(ctx, STAGE_CALL);
    return 0;
}

/* Take an address space's ranges (threads of a process change them from several CPUs). */
static __always_inline int lock_ranges(struct range_set *set)
{
#pragma nounroll
    for (int i = 0; i < LOCK_TRIES; i++)
        if (__sync_val_compare_and_swap(&set->lock, 0, 1) == 0)
            return 1;
    return 0;
}

static __always_inline void unlock_ranges(struct range_set *set)
{
    __sync_lock_test_and_set(&set->lock, 0);
}

/* The class that most bytes of a change had (a successful mremap moves part of one mapping). */
static __always_inline u32 main_class(struct paint *op)
{
    u32 best = CLASS_NONE;
#pragma unroll
    for (int c = CLASS_COMMITTED; c < NCLASSES; c++)
        if (op->bytes[c] > op->bytes[best])
            best = c;
    return best;
}

/* Apply the job's next change to its address space's ranges (an mremap's second comes back here by
 * tail call), then what the changes mean to the call. */
int range_stage(struct bpf_raw_tracepoint_args *ctx)
{
    u32 zero = 0;
    struct call_job *job = jobs.lookup(&zero);
    if (!job)
        return 0;
    u32 op_index = job->next;
    if (op_index >= 2)
        return 0;
    struct paint *op = &job->ops[op_index];
    if (op_index == 1) { /* mremap: the new range is of the class the old one had */
        job->cls = main_class(&job->ops[0]);
        op->fill = job->cls;
    }
    u32 tgid = job->pid_tgid >> 32;
    struct range_set *set = ranges.lookup(&tgid);
    if (!set) {
        struct range_set *empty = no_ranges.lookup(&zero);
        if (!empty)
            return 0;
        ranges.update(&tgid, empty);  /* BPF_ANY: a thread that raced us made the same */
        set = ranges.lookup(&tgid);
    }
    if (!set)
        count(CTR_RANGES_FULL);
    else if (!lock_ranges(set))
        count(CTR_RANGES_BUSY);
    else {
        int full = range_paint(set, op);
        unlock_ranges(set);
        if (full)
            count(CTR_RANGES_FULL);
    }
    job->next = op_index + 1;
    if (job->next < job->nops) {
        stages.call(ctx, STAGE_RANGES);
        return 0;
    }
    if (job->kind == KIND_MPROTECT) {
        op = &job->ops[0];
        if (op->to[CLASS_RESERVED] == CLASS_COMMITTED) {
            job->size = op->bytes[CLASS_RESERVED];
            job->cls = job->size ? CLASS_COMMITTED : CLASS_NONE;
        } else {
            job->size = -(s64)op->bytes[CLASS_COMMITTED];
            job->cls = job->size ? CLASS_RESERVED : CLASS_NONE;
        }
    }
    if (job->kind != -1)
        stages.call(ctx, STAGE_CALL);
    return 0;
}

/* Count the call and send it. */
int call_stage(struct bpf_raw_tracepoint_args *ctx)
{
    u32 zero = 0;
    struct call_job *job = jobs.lookup(&zero);
    if (!job || job->kind >= NKINDS)
        return 0;
    int kind = job->kind;
    add_totals(kind, job->size, job->failed);
    /* mmap lengths and mremap growth by class (mmap's add up to its bytes) */
    u64 cls_bytes = kind == KIND_MMAP ? job->args[1] : job->size;
    if ((kind == KIND_MMAP || kind == KIND_MREMAP) && !job->failed && (s64)cls_bytes > 0) {
        u32 slot = kind * (CLASS_MASK + 1) + (job->cls & CLASS_MASK);
        u64 *b = class_bytes.lookup(&slot);
        if (b)
            *b += cls_bytes;
    }
    struct pt_regs r = {};
    read_kernel(&r, sizeof(r), (void *)ctx->args[0]);
    u64 args[6];
#pragma unroll
    for (int j = 0; j < 6; j++)
        args[j] = job->args[j];
    emit_call(ctx, &r, kind, job->pid_tgid, args, job->ret, job->size, job->cls);
    return 0;
}

/* munmap's pages leave the ranges before the kernel unmaps them, so that another thread that maps
 * them next finds them gone. It fails only on arguments it can tell here. */
static __always_inline void unmap_ranges(void *ctx, struct pt_regs *regs, u64 pid_tgid)
{
    u64 addr = 0, len = 0;
    read_kernel(&addr, sizeof(addr), &REG_ARG0(regs));
    read_kernel(&len, sizeof(len), &REG_ARG1(regs));
    if ((addr & 4095) || len == 0 || addr + PAGE_UP(len) < addr)
        return;
    u32 zero = 0;
    struct call_job *job = jobs.lookup(&zero);
    if (!job)
        return;
    job->pid_tgid = pid_tgid;
    job->kind = -1;
    job->nops = 1;
    job->next = 0;
    fill_op(&job->ops[0], addr, len, CLASS_NONE);
    stages.call(ctx, STAGE_RANGES);
}

/* Remember clone flags so that the fork tracepoint can tell a new process from a new thread; apply
 * munmap to the ranges. */
RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 nr = ctx->args[1];
    if (nr != NR_CLONE && nr != NR_CLONE3 && nr != NR_MUNMAP)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!is_traced(pid_tgid >> 32))
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    if (nr == NR_MUNMAP) {
        unmap_ranges(ctx, regs, pid_tgid);
        return 0;
    }
    u64 flags = 0;
    if (nr == NR_CLONE) {
        read_kernel(&flags, sizeof(flags), &REG_ARG0(regs));
    } else {
        u64 uargs = 0;
        read_kernel(&uargs, sizeof(uargs), &REG_ARG0(regs));
        read_user(&flags, sizeof(flags), (void *)uargs); /* clone_args.flags */
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

/* Every change of any mm's counters (the tracepoint's layout read by bcc from tracefs). */
TRACEPOINT_PROBE(kmem, rss_stat)
{
    return on_rss_stat(args, args->mm_id, args->curr, args->member, args->size);
}

#if HAVE_FAULT_TP && ((KIND_MASK >> KIND_RESIDENT) & 1) /* only to tell faults from syscalls */
RAW_TRACEPOINT_PROBE(page_fault_user)
{
    return on_user_fault(ctx->args[0], (struct pt_regs *)ctx->args[1]);
}
#endif

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
    u64 birth = bpf_ktime_get_ns();
    births.update(&child, &birth);
    struct exec_ranges *exec = exec_ranges.lookup(&tgid); /* its executable ranges since exec */
    if (exec)
        exec_ranges.update(&child, exec);
    u64 *brk = breaks.lookup(&tgid); /* the child starts with its parent's break */
    if (brk) {
        u64 inherited = *brk;
        breaks.update(&child, &inherited);
    }
    struct range_set *mine = ranges.lookup(&tgid); /* and a copy of its mappings */
    if (mine && lock_ranges(mine)) {
        ranges.update(&child, mine);
        unlock_ranges(mine);
        struct range_set *copy = ranges.lookup(&child);
        if (copy)
            unlock_ranges(copy);
    } else if (mine) {
        count(CTR_RANGES_BUSY);
    }
    struct py_proc *py = py_procs.lookup(&tgid); /* the child runs the same interpreter */
    if (py && py->gen == exec_gen_of(tgid)) {
        struct py_proc inherited = *py;
        inherited.gen = 0; /* the child's generation until it execs */
        py_procs.update(&child, &inherited);
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
    ranges.delete(&tgid);
    next_gen(tgid);
    u32 *exec_gen = exec_gens.lookup(&tgid);
    u32 next_exec = exec_gen ? *exec_gen + 1 : 1;
    exec_gens.update(&tgid, &next_exec);
    reset_exec_ranges(tgid);
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
    births.delete(&tgid);
    breaks.delete(&tgid);
    ranges.delete(&tgid);
    gens.delete(&tgid);
    exec_gens.delete(&tgid);
    exec_ranges.delete(&tgid);
    space_exited(tgid);
    py_procs.delete(&tgid);
    struct proc_rec *rec = proc_record(REC_EXIT, tgid);
    if (!rec)
        return 0;
    emit_proc(rec);
    return 0;
}
