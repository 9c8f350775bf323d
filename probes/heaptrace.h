/* heaptrace.h: the contract between probes/heaptrace.bpf.c and heaptrace's eBPF backend.
 *
 * Every record the probe sends on the ring buffer or keeps in a map that user space reads, and
 * every constant both sides use, is defined here once. heaptrace/backends/probe_layout.py declares
 * the same records field by field and checks them against bcc's own ctypes types of the maps
 * when the probe is loaded (and tests/unit/test_probe_layout.py against this file), so a field
 * moved on one side only is an error, not a misread.
 *
 * Settings that size records keep their defaults here (#ifndef), so the file stays valid C alone.
 */
#ifndef HEAPTRACE_H
#define HEAPTRACE_H

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif
#ifndef STACK_BYTES          /* bytes of user stack copied per event (0: none); a power of two */
#define STACK_BYTES 16384
#endif
#ifndef BATCH                /* calls per ring-buffer record (a power of two) */
#define BATCH 32
#endif
#ifndef MAX_FRAMES           /* frames walked in BPF */
#define MAX_FRAMES 64
#endif
#ifndef PATH_BYTES           /* longest file path kept for executable mappings */
#define PATH_BYTES 256
#endif
#ifndef SLOT_SHIFT           /* resident growth is summed per stack in slots of 2^SLOT_SHIFT ns */
#define SLOT_SHIFT 27
#endif
#ifndef MAX_PY_FRAMES        /* Python frames read per event (the leaf-most ones) */
#define MAX_PY_FRAMES 128
#endif
#define PY_MAX_THREADS 64    /* thread states searched for the calling thread's */
#define PY_CODES_PER_EVENT 8 /* code objects copied at most per event (the rest: next events) */
#define PY_FRAME_BYTES 128   /* the head of a frame, read in one piece */
#define PY_CODE_BYTES 256    /* the head of a code object, as user space decodes it */
#define PY_NAME_BYTES 128    /* a str object's head and text: function and qualified names */
#define PY_FILE_BYTES 512    /* the same for file names */
#define PY_LINES_BYTES 16384 /* a code object's line table (a bytes object: head and data) */

/* Kinds: the index of each kind's totals slot and mask bit (heaptrace/events.py SPECS). */
#define KIND_BRK 0
#define KIND_MMAP 1
#define KIND_MUNMAP 2
#define KIND_MREMAP 3
#define KIND_MADVISE 4
#define KIND_MPROTECT 5
#define KIND_RESIDENT 6 /* not a syscall: pages becoming resident (kmem:rss_stat) */
#define NKINDS 7
#define NBUCKETS 64

#define REC_BATCH 1
#define REC_FORK 2
#define REC_EXEC 3
#define REC_EXIT 4
#define REC_STACK 5
#define REC_COPY 6
#define REC_MAPFILE 7
#define REC_RSS 8
#define REC_PYSTACK 9
#define REC_PYCODE 10

#define STACK_WALKED (1ULL << 63)
#define STACK_COPIED (1ULL << 62)
#define PY_STACK (1ULL << 61)   /* a call's py_ref: the Python frames of a REC_PYSTACK */
#define PY_ENTRY 1ULL           /* low bit of a frame's code address: the first frame its C eval call ran */
#define PY_CUT 1                /* py_stack_rec.flags: more frames than MAX_PY_FRAMES, or a read failed */

#define STATE_ACTIVE 1
#define STATE_ARMED 2 /* the target between fork and its exec: not counted yet */

#define CTR_LOST 0          /* events not delivered on the ring buffer */
#define CTR_STACK_SHORT 1   /* stack copies shorter than STACK_BYTES (top of stack reached) */
#define CTR_STACK_FAIL 2    /* stack copies that failed entirely */
#define CTR_PROCS_FULL 3    /* children not followed because the process map was full */
#define CTR_WALKED 4        /* stacks walked whole in BPF */
#define CTR_COPIED 5        /* stack copies sent (slow path) */
#define CTR_NO_STACK 6      /* calls left without (the rest of) a stack: copy lost */
#define CTR_WALK_CUT 7      /* stacks the BPF walk could not finish (a read failed) */
#define CTR_RANGES_FULL 8   /* mapping changes not followed: the address space had MAX_RANGES */
#define CTR_RANGES_BUSY 9   /* mapping changes not followed: another CPU held the ranges too long */
#define CTR_RESIDENT_LOST 10 /* resident increments summed without a stack: the per-stack map was full */
#define CTR_SPACES_FULL 11   /* address spaces not followed: the map of spaces was full */
#define CTR_PY_STACKS 12     /* calls with Python frames */
#define CTR_PY_NO_THREAD 13  /* calls in a Python process whose thread had no thread state */
#define CTR_PY_CUT 14        /* Python frame chains cut (MAX_PY_FRAMES, or a read failed) */
#define CTR_PY_CODES 15      /* code objects copied */
#define NCOUNTERS 16

/* madvise advice that hands pages back while the mapping stays (uapi mman-common.h). */
#define MADV_DONTNEED 4
#define MADV_FREE 8
#define MADV_REMOVE 9

struct kind_totals {
    u64 calls;
    u64 failed;
    u64 bytes;
    u64 released;
};

/* One traced call. Sent in batches (struct call_batch) to keep the ring-buffer overhead per
 * event low at hundreds of thousands of calls per second. */
struct call_rec {
    u32 kind;
    u32 tid;
    u64 ts;
    u32 pid;
    s32 stack_id;   /* kernel frame-pointer stack map id (--unwind fp), or -1 */
    u64 args[6];
    s64 ret;
    s64 size;
    u64 ip;
    u64 stack_ref;  /* STACK_WALKED|hash: the frames walked in BPF, or 0 */
    u64 rest_ref;   /* STACK_COPIED|id: a copy of the stack above them, or 0 when complete */
    u32 cls;        /* CLASS_* (ranges.h) of what an mmap mapped, an mremap moved or grew, an
                     * mprotect committed (COMMITTED) or released (RESERVED); else CLASS_NONE */
    u32 pad;
    u64 py_ref;     /* PY_STACK|hash: the calling thread's Python frames, or 0 */
};

struct call_batch {
    u32 type;
    u32 n;
    u64 first_ts;
    struct call_rec recs[BATCH];
};

/* A user stack walked in BPF with the per-PC rules user space learned: sent once per stack. */
struct stack_rec {
    u32 type;
    u32 pid;
    u32 n;
    u32 complete;
    u64 hash;
    u64 ips[MAX_FRAMES];
};

/* The slow path: registers and a copy of the top of the user stack, for user space to unwind
 * (and to learn the rules of the PCs it meets on the way). */
struct copy_rec {
    u32 type;
    u32 pid;
    u32 tid;
    u32 stack_len;
    u32 gen;       /* the address space's exec generation the rules learned from it apply to */
    u32 depth;     /* frames below ip: 0 when ip is the syscall's, else ip is a return address */
    u64 id;
    u64 ip;
    u64 sp;
    u64 fp;
    u64 lr;
    /* twice the copy size, so the verifier can bound the piecewise copy below */
    u8 stack[STACK_BYTES > 0 ? 2 * STACK_BYTES : 8];
};

/* How to step from a PC to its caller: CFA = (sp or fp) + cfa_off, the return address is at
 * CFA - 8, and the caller's frame pointer at CFA + fp_off when fp_saved (x86_64). */
struct rule_key {
    u32 tgid;
    u32 gen;  /* bumped at each exec: rules of an old image never apply to a new one */
    u64 pc;
};

struct rule {
    s32 cfa_off;
    s32 fp_off;
    u8 cfa_reg;   /* 0: sp, 1: fp */
    u8 fp_saved;
    u8 end;       /* outermost frame (_start, clone, thread start): the stack is whole */
    u8 pad[5];
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

/* An executable file mapped by a traced process (ld.so loading a library, dlopen): where,
 * and which file, so that its stacks symbolize even after the process is gone. */
struct mapfile_rec {
    u32 type;
    u32 pid;
    u64 ts;
    u64 addr;
    u64 len;
    u64 pgoff;
    char path[PATH_BYTES];
};

/* The kernel's RSS counters of an address space (kmem:rss_stat's `member`): the values come
 * from the tracepoint's print format in tracefs (-D flags); these are Linux 5.5 to 6.18's. */
#ifndef MM_FILEPAGES
#define MM_FILEPAGES 0
#endif
#ifndef MM_ANONPAGES
#define MM_ANONPAGES 1
#endif
#ifndef MM_SWAPENTS
#define MM_SWAPENTS 2
#endif
#ifndef MM_SHMEMPAGES
#define MM_SHMEMPAGES 3
#endif
#define NMEMBERS 4

/* Why an rss_rec was sent. */
#define RSS_START 1   /* a traced process's address space is followed from here (its counters now) */
#define RSS_CHANGE 2  /* its RSS moved by a step since the last record */
#define RSS_END 3     /* it was emptied (exit, exec): the last record of that space */

/* In whose context resident growth happened. */
#define CAUSE_FAULT 1   /* a user page fault of the thread (the first touch of a page) */
#define CAUSE_SYSCALL 2 /* the thread was in a syscall (the kernel wrote into fresh pages) */
#define CAUSE_CONTEXT 3 /* another task: a kernel thread (khugepaged), another process */
#define CAUSE_USER 4    /* the thread itself, entry unknown (no page-fault tracepoint here) */

/* One traced address space (mm), as the probe follows it: bytes by member (MM_*), as the
 * kernel counts them, and the peak of file + anon + shmem. */
struct rss_space {
    u32 tgid;      /* the process it belongs to; 0 while not known yet (a fork's copy, an exec) */
    u32 exiting;   /* its process exited or exec'd: forgotten when emptied */
    u64 bytes[NMEMBERS];
    s64 rss;       /* file + anon + shmem */
    s64 sent;      /* rss in the last rss_rec sent */
    u64 peak;
    u64 peak_ts;
    u64 peak_bytes[NMEMBERS];
    s64 debt[NMEMBERS]; /* decreases that were two faults' events out of order (resident.h) */
};

/* The RSS of one address space at one moment, with its peak so far. */
struct rss_rec {
    u32 type;
    u32 pid;
    u32 space;     /* the kernel's mm_id */
    u32 why;       /* RSS_* */
    u64 ts;
    u64 bytes[NMEMBERS];
    u64 peak;
    u64 peak_ts;
    u64 peak_bytes[NMEMBERS];
};

/* The summed RSS of every traced address space, and its peak. */
struct rss_total {
    s64 rss;
    u64 peak;
    u64 peak_ts;
    s64 bytes[NMEMBERS];
    u64 peak_bytes[NMEMBERS];
};

/* Resident growth summed per process, image, time slot, member, cause and stack. */
struct resident_key {
    u32 pid;       /* the process whose address space grew */
    u32 gen;       /* its exec generation: which image the stack belongs to */
    u32 slot;      /* ts >> SLOT_SHIFT */
    u32 member;    /* MM_ANONPAGES, MM_FILEPAGES or MM_SHMEMPAGES */
    u32 cause;     /* CAUSE_* */
    s32 nr;        /* CAUSE_SYSCALL: the syscall's number */
    s32 stack_id;  /* as in call_rec: the kernel's frame-pointer stack (--unwind fp), or -1 */
    u32 pad;
    u64 stack_ref; /* as in call_rec: the frames walked in BPF */
    u64 rest_ref;  /* and a copy of the rest */
    char comm[TASK_COMM_LEN]; /* CAUSE_CONTEXT: the task in whose context it grew */
};

struct resident_val {
    u64 bytes;
    u64 count;     /* increments */
    u64 first_ts;
    u64 addr;      /* CAUSE_FAULT: the first faulting address */
    u32 tid;       /* the first thread */
    u32 pad;
};

/* RSS by member of a process at attach (from /proc/PID/status), so that its first counter
 * changes are not taken for growth. */
struct rss_bytes {
    u64 bytes[NMEMBERS];
};

/* How a CPython frame chain is laid out (heaptrace/stacks/python/layouts.py). */
#define PY_FRAMES_OBJECT 0  /* 3.8-3.10: PyFrameObject chain; each frame is one C eval call */
#define PY_FRAMES_IS_ENTRY 1 /* 3.11: _PyInterpreterFrame; is_entry marks an eval call's first */
#define PY_FRAMES_SHIM 2    /* 3.12+: eval calls separated by shim frames the C stack owns */
#define PY_OWNED_BY_CSTACK 3
#define PY_NO_OFFSET 0xffffffff

/* One traced Python process: where its runtime is and the offsets of its version, taught by
 * user space when it finds the interpreter in the process's mappings (and copied at fork). */
struct py_proc {
    u32 gen;                /* the exec generation it applies to */
    u32 frames;             /* PY_FRAMES_* */
    u64 runtime;            /* address of _PyRuntime */
    u32 interpreters_head;  /* _PyRuntime.interpreters.head */
    u32 threads_head;       /* PyInterpreterState: first thread state */
    u32 tstate_next;
    u32 tstate_tid;         /* the thread's id: native_thread_id, or thread_id (see task_fsbase) */
    u32 task_fsbase;        /* before 3.11 threads are known by pthread_self(), glibc's fs base:
                             * its offset in task_struct; else PY_NO_OFFSET (match the tid) */
    u32 tstate_frame;       /* the current frame (or the _PyCFrame holding it) */
    u32 cframe_frame;       /* _PyCFrame.current_frame, or PY_NO_OFFSET */
    u32 frame_previous;
    u32 frame_code;
    u32 frame_instr;        /* the instruction pointer, or f_lasti */
    u32 frame_entry;        /* is_entry (3.11) or owner (3.12+), or PY_NO_OFFSET */
    u32 code_filename;
    u32 code_name;
    u32 code_qualname;      /* or PY_NO_OFFSET (before 3.11) */
    u32 code_linetable;
    u32 frame_globals;      /* the frame's module globals: with the code, what names it */
    /* runtime 0: libpython is not mapped yet. The probe sets runtime = address + wait_delta
     * when the process maps its code (PROT_EXEC, at file offset wait_pgoff, wait_len bytes),
     * so that the frames of a short-lived process are read from its first Python call on. */
    u64 wait_pgoff;
    u64 wait_len;
    u64 wait_delta;
};

/* The Python frames of a call, leaf first: sent once per distinct chain. */
struct py_stack_rec {
    u32 type;
    u32 pid;
    u32 n;
    u32 flags;              /* PY_CUT */
    u64 hash;
    u64 codes[MAX_PY_FRAMES];   /* code object address | PY_ENTRY; 0 | PY_ENTRY: an eval call
                                 * that runs no Python frame yet */
    u64 instrs[MAX_PY_FRAMES];  /* instruction pointer (3.11+) or f_lasti */
    u64 scopes[MAX_PY_FRAMES];  /* the frame's globals: a code object's address can be
                                 * reused once it is freed (a module's code after its import),
                                 * the pair (code, globals) hardly */
};

/* A code object seen for the first time in a process: raw copies of it and of the objects
 * that name it, decoded in user space with the version's layout. */
struct py_code_rec {
    u32 type;
    u32 pid;
    u64 ts;
    u64 code;
    u64 scope;              /* the globals of the frame it was seen in */
    u32 gen;
    u32 lines_len;          /* bytes of `lines` read, and sent: the record ends there */
    u8 head[PY_CODE_BYTES];
    u8 name[PY_NAME_BYTES];
    u8 qualname[PY_NAME_BYTES];
    u8 filename[PY_FILE_BYTES];
    u8 lines[PY_LINES_BYTES];
};

#endif /* HEAPTRACE_H */
