/* resident.h: the RSS of every traced address space, followed from the kernel's own counters,
 * and what becomes resident attributed to the user stack of the thread in whose context it did.
 * Part of heaptrace.bpf.c (included after the stack walk it uses); its records are in heaptrace.h.
 *
 * kmem:rss_stat fires on every change of an mm's file, anon, swap or shmem count, with the new
 * value (the exact sum of the kernel's per-CPU counter), the mm as a hash (mm_id) and whether it
 * is the current task's (curr). One page touched is one event; a transparent huge page one event
 * of 2 MiB. The probe keeps each space's counters, its RSS (file + anon + shmem) and peak, the
 * sum over every traced space and its peak, all exact whatever happens to the event stream.
 *
 * Which process a space is: rss_stat names only the mm. A space is bound to a traced process at
 * its first change made by one of that process's threads (curr=1) outside execve. Changes before
 * (a fork copying the parent's page tables into the child's mm, an exec building the new image)
 * are kept as the space's starting RSS, not as growth; an attached process starts from its
 * /proc/PID/status (attach_rss). Once bound, changes from any context count: the process's own
 * threads, and other tasks (curr=0: khugepaged collapsing pages, reclaim, another process writing
 * through ptrace or process_vm_writev, the teardown at exit). A space is forgotten when its process
 * exited (or exec'd another image) and the kernel has emptied it, so that a new mm at the same
 * address, which has the same mm_id, is never taken for it.
 *
 * Resident growth (an increase of file, anon or shmem in a bound space) is attributed to:
 *   CAUSE_FAULT    the user stack of the thread whose page fault it was (its faulting address),
 *   CAUSE_SYSCALL  the user stack of the thread in a syscall (the kernel wrote into fresh pages:
 *                  read() into a new buffer, MAP_POPULATE, mlock),
 *   CAUSE_CONTEXT  the name of the other task in whose context it grew (no user stack),
 * and summed in BPF per (process, image, time slot, member, cause, stack): user space drains the
 * finished slots. Page faults come at hundreds of thousands a second; sums keep the stream small.
 */

#ifndef MAX_SPACES
#define MAX_SPACES 16384
#endif
#ifndef MAX_RESIDENT          /* distinct sums of resident growth between two drains */
#define MAX_RESIDENT 65536
#endif
#ifndef RSS_STEP_MIN          /* an rss_rec when a space's RSS moved by this many bytes... */
#define RSS_STEP_MIN (256 * 1024)
#endif
#ifndef RSS_STEP_SHIFT        /* ... or by 1/2^RSS_STEP_SHIFT of it, whichever is more */
#define RSS_STEP_SHIFT 8
#endif
#ifndef HAVE_FAULT_TP         /* the raw tracepoint page_fault_user (x86) */
#define HAVE_FAULT_TP 0
#endif

/* `resident` is one of the traced kinds: sum its growth by stack (the RSS is followed anyway) */
#define RESIDENT_TRACED ((KIND_MASK >> KIND_RESIDENT) & 1)

struct user_fault {
    u64 ip;
    u64 sp;
    u64 addr;
};

/* The maps: key -> value; who writes; who reads. */
/* mm_id -> struct rss_space; rss_stat (creates, binds, updates, forgets), exit (marks); user space */
BPF_HASH(spaces, u32, struct rss_space, MAX_SPACES);
/* tgid -> mm_id of its current space; rss_stat (binding, forgetting); exit */
BPF_HASH(space_of, u32, u32, MAX_PROCS);
/* tgid -> RSS by member when it was attached; user space (attach); rss_stat (binding) */
BPF_HASH(attach_rss, u32, struct rss_bytes, 1024);
/* 0 -> the summed RSS of the bound spaces and its peak; rss_stat; user space */
BPF_ARRAY(rss_sum, struct rss_total, 1);
/* member -> increments (calls), bytes grown, bytes shrunk (released) in bound spaces, per CPU;
 * rss_stat; user space (the resident split) */
BPF_PERCPU_ARRAY(rss_members, struct kind_totals, NMEMBERS);
/* tid -> its last user page fault; page_fault_user; rss_stat (was this growth that fault?) */
BPF_TABLE("lru_hash", u32, struct user_fault, faults, 65536);
/* resident_key -> the growth summed there; rss_stat; user space drains the finished slots */
BPF_HASH(resident, struct resident_key, struct resident_val, MAX_RESIDENT);
/* 0 -> scratch resident_key (too big for the BPF stack beside the registers); rss_stat */
BPF_PERCPU_ARRAY(resident_scratch, struct resident_key, 1);
/* 0 -> scratch rss_rec; send_rss */
BPF_PERCPU_ARRAY(rss_scratch, struct rss_rec, 1);

static __always_inline int counts_in_rss(int member)
{
    return member == MM_FILEPAGES || member == MM_ANONPAGES || member == MM_SHMEMPAGES;
}

static __always_inline int space_is_empty(struct rss_space *s)
{
    int empty = 1;
#pragma unroll
    for (int i = 0; i < NMEMBERS; i++)
        empty &= s->bytes[i] == 0;
    return empty;
}

/* Raise *peak to value; true when this call did (other CPUs raise it concurrently). */
static __always_inline int raise_peak(u64 *peak, u64 value)
{
    for (int i = 0; i < 8; i++) {
        u64 old = *(volatile u64 *)peak;
        if (value <= old)
            return 0;
        if (__sync_val_compare_and_swap(peak, old, value) == old)
            return 1;
    }
    return 0;
}

static __always_inline void send_rss(struct rss_space *s, u32 mm, u32 why, u64 now)
{
    u32 zero = 0;
    struct rss_rec *r = rss_scratch.lookup(&zero);
    if (!r)
        return;
    r->type = REC_RSS;
    r->pid = s->tgid;
    r->space = mm;
    r->why = why;
    r->ts = now;
#pragma unroll
    for (int i = 0; i < NMEMBERS; i++) {
        r->bytes[i] = s->bytes[i];
        r->peak_bytes[i] = s->peak_bytes[i];
    }
    r->peak = s->peak;
    r->peak_ts = s->peak_ts;
    if (events.ringbuf_output(r, sizeof(*r), 0) != 0)
        count(CTR_LOST);
}

/* A change of one member of a bound space, in the sum over every traced space. */
static __always_inline void add_to_sum(int member, s64 delta, u64 now)
{
    u32 zero = 0;
    struct rss_total *t = rss_sum.lookup(&zero);
    if (!t || delta == 0)
        return;
    __sync_fetch_and_add(&t->bytes[member & (NMEMBERS - 1)], delta);
    if (!counts_in_rss(member))
        return;
    s64 rss = __sync_fetch_and_add(&t->rss, delta) + delta;
    if (delta > 0 && rss > 0 && raise_peak(&t->peak, rss)) {
        t->peak_ts = now;
#pragma unroll
        for (int i = 0; i < NMEMBERS; i++)
            t->peak_bytes[i] = t->bytes[i];
    }
}

/* Forget a space whose process is gone once the kernel has emptied it (its last record says so). */
static __always_inline void forget_if_emptied(struct rss_space *s, u32 mm, u64 now)
{
    if ((s->tgid && !s->exiting) || !space_is_empty(s))
        return;
    u32 tgid = s->tgid;
    if (tgid) {
        send_rss(s, mm, RSS_END, now);
        u32 *current_mm = space_of.lookup(&tgid);
        if (current_mm && *current_mm == mm)
            space_of.delete(&tgid);
    }
    spaces.delete(&mm);
}

static __always_inline void mark_exiting(u32 mm, u64 now)
{
    struct rss_space *s = spaces.lookup(&mm);
    if (!s)
        return;
    s->exiting = 1;
    forget_if_emptied(s, mm, now);
}

/* The process's last thread exited (sched_process_exit). */
static __always_inline void space_exited(u32 tgid)
{
    u32 *mm = space_of.lookup(&tgid);
    if (mm)
        mark_exiting(*mm, bpf_ktime_get_ns());
}

/* A space seen for the first time: ours when a traced (or armed) task changes it. */
static __always_inline struct rss_space *new_space(u32 mm, u32 tgid, int curr)
{
    u8 *state = traced.lookup(&tgid);
    if (!state)
        return 0;
    struct rss_space fresh = {};
    struct rss_bytes *base = curr && *state == STATE_ACTIVE ? attach_rss.lookup(&tgid) : 0;
    if (base) { /* an attached process: its counters when heaptrace attached */
#pragma unroll
        for (int i = 0; i < NMEMBERS; i++) {
            fresh.bytes[i] = base->bytes[i];
            if (counts_in_rss(i))
                fresh.rss += base->bytes[i];
        }
        attach_rss.delete(&tgid);
    }
    if (spaces.insert(&mm, &fresh) != 0 && !spaces.lookup(&mm))
        count(CTR_SPACES_FULL);
    return spaces.lookup(&mm);
}

/* The space becomes the process's: its counters now are where it starts. */
static __always_inline void bind_space(struct rss_space *s, u32 mm, u32 tgid, u64 now)
{
    u64 *owner = (u64 *)&s->tgid; /* tgid and exiting: one 8-byte word to compare and swap */
    u64 unbound = *(volatile u64 *)owner & 0xffffffff00000000ULL;
    u64 bound = unbound | tgid;
    if (__sync_val_compare_and_swap(owner, unbound, bound) != unbound)
        return; /* another CPU bound it */
    u32 *previous = space_of.lookup(&tgid);
    if (previous && *previous != mm)
        mark_exiting(*previous, now); /* the image an exec replaced */
    space_of.update(&tgid, &mm);
    s->sent = s->rss;
    s->peak = s->rss > 0 ? s->rss : 0;
    s->peak_ts = now;
#pragma unroll
    for (int i = 0; i < NMEMBERS; i++) {
        s->peak_bytes[i] = s->bytes[i];
        add_to_sum(i, s->bytes[i], now);
    }
    send_rss(s, mm, RSS_START, now);
}

static __always_inline int read_user_regs(struct pt_regs *regs)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
    struct pt_regs *user = (struct pt_regs *)bpf_task_pt_regs(task);
    return read_kernel(regs, sizeof(*regs), user);
}

/* Whether the thread is in the page fault it last took, or in a syscall. */
static __always_inline u32 user_cause(u32 tid, struct pt_regs *regs, u64 *addr, s32 *nr)
{
#if HAVE_FAULT_TP
    struct user_fault *f = faults.lookup(&tid);
    if (f && f->ip == REG_IP(regs) && f->sp == REG_SP(regs)) {
        *addr = f->addr;
        return CAUSE_FAULT;
    }
    *nr = (s32)REG_NR(regs);
    return CAUSE_SYSCALL;
#else
    return CAUSE_USER;
#endif
}

static __always_inline int in_exec(u32 tid, struct pt_regs *regs)
{
    u64 addr = 0;
    s32 nr = -1;
    if (user_cause(tid, regs, &addr, &nr) == CAUSE_FAULT)
        return 0;
    u64 entry = REG_NR(regs);
    return entry == NR_EXECVE || entry == NR_EXECVEAT;
}

/* Exact totals: `resident` (increments, bytes grown, bytes shrunk) and the same per member. */
static __always_inline void add_resident_totals(int member, s64 delta)
{
    u32 m = member & (NMEMBERS - 1), kind = KIND_RESIDENT;
    struct kind_totals *t = rss_members.lookup(&m);
    struct kind_totals *all = counts_in_rss(member) ? totals.lookup(&kind) : 0;
    if (delta == 0) /* two changes at once: both read the same sum (the first moved by both) */
        return;
    if (delta < 0) {
        if (t)
            t->released += -delta;
        if (all)
            all->released += -delta;
        return;
    }
    if (t) {
        t->calls++;
        t->bytes += delta;
    }
    if (all)
        add_totals(KIND_RESIDENT, delta, 0);
}

/* Two page faults in one space on two CPUs can reach the probe out of order: the later value
 * first, then the earlier one, which reads as a page released, and the next change as that page
 * grown again. A decrease of anon seen inside one of the process's own page faults is such an
 * inversion (a fault never shrinks anon; it can shrink file or shmem, copying a private page on
 * write, so those are left as they come): owed, not released, and paid back from the next anon
 * growth. Returns what resident growth counts of this change; the RSS itself follows every
 * value as it comes (exact either way). */
static __always_inline s64 settle(struct rss_space *s, int member, s64 delta, int curr, u32 tgid,
                                  u32 tid, struct pt_regs *regs, int *have_regs)
{
    s64 *debt = &s->debt[member & (NMEMBERS - 1)];
    if (delta > 0) {
        s64 owed = *(volatile s64 *)debt;
        if (owed <= 0)
            return delta;
        s64 pay = owed < delta ? owed : delta;
        __sync_fetch_and_add(debt, -pay);
        return delta - pay;
    }
    if (delta < 0 && curr && is_traced(tgid)) {
        if (!*have_regs)
            *have_regs = read_user_regs(regs) == 0;
        u64 addr = 0;
        s32 nr = -1;
        if (*have_regs && user_cause(tid, regs, &addr, &nr) == CAUSE_FAULT) {
            __sync_fetch_and_add(debt, -delta);
            return 0;
        }
    }
    return delta;
}

/* Growth of a bound space: in the exact totals, and summed by stack. */
static __always_inline void add_growth(void *ctx, struct rss_space *s, int member, s64 delta,
                                       int curr, u32 tgid, u32 tid, u64 now,
                                       struct pt_regs *regs, int have_regs)
{
    u32 zero = 0;
    struct resident_key *k = resident_scratch.lookup(&zero);
    if (!k)
        return;
    k->pid = s->tgid;
    k->gen = gen_of(s->tgid);
    k->slot = now >> SLOT_SHIFT;
    k->member = member;
    k->nr = 0;
    k->stack_id = -1;
    k->pad = 0;
    k->stack_ref = k->rest_ref = 0;
    u64 addr = 0;
    if (curr && is_traced(tgid) && (have_regs || read_user_regs(regs) == 0)) {
        __builtin_memset(k->comm, 0, sizeof(k->comm));
        k->cause = user_cause(tid, regs, &addr, &k->nr);
        u64 rest = 0;
        k->stack_ref = user_stack(regs, tgid, tid, &rest);
        k->rest_ref = rest;
#if USER_STACK_MAP
        k->stack_id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
#endif
    } else {
        k->cause = CAUSE_CONTEXT;
        bpf_get_current_comm(k->comm, sizeof(k->comm));
    }
    struct resident_val *v = resident.lookup(k);
    if (!v) {
        struct resident_val first = {.first_ts = now, .addr = addr, .tid = tid};
        resident.insert(k, &first);
        v = resident.lookup(k);
        if (!v) {
            count(CTR_RESIDENT_LOST);
            return;
        }
    }
    __sync_fetch_and_add(&v->bytes, delta);
    __sync_fetch_and_add(&v->count, 1);
}

/* One kmem:rss_stat event: member of space mm is now size bytes (TRACEPOINT_PROBE in
 * heaptrace.bpf.c: bcc reads the tracepoint's format in the main file only). */
static __always_inline int on_rss_stat(void *ctx, u32 mm, int curr, int member, s64 size)
{
    if (member < 0 || member >= NMEMBERS)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32, tid = (u32)pid_tgid;
    struct rss_space *s = spaces.lookup(&mm);
    if (!s)
        s = new_space(mm, tgid, curr);
    if (!s)
        return 0;
    u64 now = bpf_ktime_get_ns();
    struct pt_regs regs = {};
    int have_regs = 0;
    if (!s->tgid && curr && is_traced(tgid) && read_user_regs(&regs) == 0) {
        have_regs = 1;
        if (!in_exec(tid, &regs))
            bind_space(s, mm, tgid, now);
    }
    s64 delta = size - (s64)__sync_lock_test_and_set(&s->bytes[member & (NMEMBERS - 1)], (u64)size);
    s64 rss = s->rss;
    if (counts_in_rss(member))
        rss = __sync_fetch_and_add(&s->rss, delta) + delta;
    if (!s->tgid) { /* not bound yet: its starting RSS */
        if (delta < 0)
            forget_if_emptied(s, mm, now);
        return 0;
    }
    add_to_sum(member, delta, now);
    s64 grown = delta; /* what resident growth counts: delta less inversions (settle) */
    if (RESIDENT_TRACED && member == MM_ANONPAGES)
        grown = settle(s, member, delta, curr, tgid, tid, &regs, &have_regs);
    if (RESIDENT_TRACED)
        add_resident_totals(member, grown);
    if (!counts_in_rss(member))
        return 0;
    if (delta > 0 && raise_peak(&s->peak, rss)) {
        s->peak_ts = now;
#pragma unroll
        for (int i = 0; i < NMEMBERS; i++)
            s->peak_bytes[i] = s->bytes[i];
    }
    s64 step = s->sent >> RSS_STEP_SHIFT;
    if (step < RSS_STEP_MIN)
        step = RSS_STEP_MIN;
    if (rss - s->sent >= step || s->sent - rss >= step) {
        s->sent = rss;
        send_rss(s, mm, RSS_CHANGE, now);
    }
    if (delta < 0) {
        forget_if_emptied(s, mm, now);
        return 0;
    }
    if (grown > 0 && RESIDENT_TRACED)
        add_growth(ctx, s, member, grown, curr, tgid, tid, now, &regs, have_regs);
    return 0;
}

/* A user page fault (page_fault_user(address, regs, error_code)): where each traced thread
 * last faulted, so that growth in the same registers is that fault's. */
static __always_inline int on_user_fault(u64 address, struct pt_regs *regs)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!RESIDENT_TRACED || !is_traced(pid_tgid >> 32))
        return 0;
    struct user_fault f = {.addr = address};
    read_kernel(&f.ip, sizeof(f.ip), &REG_IP(regs));
    read_kernel(&f.sp, sizeof(f.sp), &REG_SP(regs));
    u32 tid = (u32)pid_tgid;
    faults.update(&tid, &f);
    return 0;
}
