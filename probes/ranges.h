/* ranges.h: what each page of one address space is, as sorted page ranges each of one class:
 * reserved (private anonymous PROT_NONE: address space only), committed (private anonymous with
 * access), file-backed or shared anonymous. This is how the probe tells an mprotect that commits
 * reserved memory (glibc's thread arenas and thread stacks grow so) from one that changes nothing,
 * one back to PROT_NONE that releases committed memory, and what an mremap grows.
 *
 * The ranges are fed by the traced syscalls themselves (mmap, munmap, mremap, mprotect), which the
 * probe sees whatever happens to the per-event stream; fork copies them, exec drops them. Plain C
 * with bounded loops and no BPF helper: heaptrace.bpf.c includes it, and the unit tests compile it
 * natively (tests/unit/test_ranges.py) to check it page by page against a model.
 *
 * A change finds its ranges by binary search, splits the two it cuts, then replaces or relabels
 * the ones inside and merges what touches: loops over the set are memory moves, so the verifier
 * checks them in time linear in MAX_RANGES. Values carried through a loop are read from memory
 * (RANGE_LOAD): the verifier keeps no bounds on them, and the paths through a loop body meet again
 * at its head instead of multiplying.
 */
#ifndef HEAPTRACE_RANGES_H
#define HEAPTRACE_RANGES_H

#ifndef MAX_RANGES          /* ranges per address space (a power of two) */
#define MAX_RANGES 512
#endif
#ifndef LOG2_MAX_RANGES
#define LOG2_MAX_RANGES 9
#endif

/* Classes of memory (heaptrace/events.py MemClass): the state of a page in a set. */
#define CLASS_NONE 0        /* unmapped (or not known: mapped before tracing began) */
#define CLASS_COMMITTED 1   /* private anonymous with access */
#define CLASS_RESERVED 2    /* private anonymous PROT_NONE */
#define CLASS_FILE 3        /* file-backed */
#define CLASS_SHARED 4      /* shared anonymous */
#define NCLASSES 5
#define CLASS_MASK 7        /* classes index arrays of 8 */

#define RANGE_LOAD(x) (*(volatile typeof(x) *)&(x))

struct anon_range {
    u64 start;              /* page-aligned [start, end) */
    u64 end;
    u64 cls;                /* CLASS_* (never CLASS_NONE in a set) */
};

/* One address space: ranges sorted by address, disjoint; ranges of one class that touch are
 * merged (the set stays small: a glibc arena is two ranges, committed then reserved, however
 * many mprotect calls grew it). */
struct range_set {
    u64 lock;               /* 1 while a CPU changes the set: threads of a process share it */
    u64 n;
    struct anon_range r[MAX_RANGES];
};

#define PAINT_FILL 0        /* every page of [start, end) becomes `fill` (CLASS_NONE: unmapped) */
#define PAINT_RELABEL 1     /* each mapped page of [start, end) becomes to[its class] */

/* One change of [start, end), page-aligned. `bytes` says how many bytes of [start, end) were of
 * each class before it; the other fields are the steps' own, kept in memory (see above). */
struct paint {
    u64 start;
    u64 end;
    u64 mode;               /* PAINT_* */
    u64 fill;
    u64 to[CLASS_MASK + 1];
    u64 bytes[CLASS_MASK + 1];  /* out */
    u64 lo;                 /* binary search */
    u64 hi;
    u64 first;              /* r[first, last) lie inside [start, end) once it is split */
    u64 last;
    u64 from;               /* a move of r[from, n) by delta places */
    s64 delta;
    u64 kept;               /* merging: r[0, kept) are done */
};

/* The first range with end > addr (by_end) or with start >= addr (else), into p->lo. */
static __always_inline void range_find(struct range_set *set, struct paint *p, u64 addr, int by_end)
{
    p->lo = 0;
    p->hi = RANGE_LOAD(set->n) & (2 * MAX_RANGES - 1);
    for (int k = 0; k <= LOG2_MAX_RANGES; k++) {
        u64 lo = RANGE_LOAD(p->lo), hi = RANGE_LOAD(p->hi);
        if (lo >= hi)
            break;
        u64 mid = (lo + hi) / 2;
        struct anon_range *r = &set->r[mid & (MAX_RANGES - 1)];
        u64 v = by_end ? RANGE_LOAD(r->end) : RANGE_LOAD(r->start);
        if (by_end ? v > addr : v >= addr)
            RANGE_LOAD(p->hi) = mid;
        else
            RANGE_LOAD(p->lo) = mid + 1;
    }
}

/* Move r[p->from, n) to r[p->from + p->delta, n + p->delta). */
static __always_inline void range_shift(struct range_set *set, struct paint *p)
{
    if (RANGE_LOAD(p->delta) > 0) {
        for (u64 k = 0; k < MAX_RANGES; k++) {
            u64 i = RANGE_LOAD(set->n) - 1 - k;  /* from the top down */
            if ((s64)i < (s64)RANGE_LOAD(p->from))
                break;
            set->r[(i + RANGE_LOAD(p->delta)) & (MAX_RANGES - 1)] = set->r[i & (MAX_RANGES - 1)];
        }
    } else if (RANGE_LOAD(p->delta) < 0) {
        for (u64 k = 0; k < MAX_RANGES; k++) {
            u64 i = RANGE_LOAD(p->from) + k;
            if (i >= RANGE_LOAD(set->n))
                break;
            set->r[(i + RANGE_LOAD(p->delta)) & (MAX_RANGES - 1)] = set->r[i & (MAX_RANGES - 1)];
        }
    }
    RANGE_LOAD(set->n) = RANGE_LOAD(set->n) + RANGE_LOAD(p->delta);
}

/* Cut the range that `addr` falls strictly inside in two; p->lo is then the first range at or
 * above addr. */
static __always_inline void range_split(struct range_set *set, struct paint *p, u64 addr)
{
    range_find(set, p, addr, 1);
    u64 i = RANGE_LOAD(p->lo);
    if (i >= RANGE_LOAD(set->n) || i >= MAX_RANGES)
        return;
    if (RANGE_LOAD(set->r[i & (MAX_RANGES - 1)].start) >= addr)
        return;
    p->from = i;
    p->delta = 1;
    range_shift(set, p);  /* r[i] and r[i + 1] are both the range now */
    i = RANGE_LOAD(p->lo);
    set->r[i & (MAX_RANGES - 1)].end = addr;
    set->r[(i + 1) & (MAX_RANGES - 1)].start = addr;
    RANGE_LOAD(p->lo) = i + 1;
}

/* Merge each range from r[p->from] on into the one before it when they touch and are of one
 * class. */
static __always_inline void range_compact(struct range_set *set, struct paint *p)
{
    u64 first = RANGE_LOAD(p->from) > 0 ? RANGE_LOAD(p->from) : 1;
    p->kept = first;
    for (u64 k = 0; k < MAX_RANGES; k++) {
        u64 i = first + k;
        if (i >= RANGE_LOAD(set->n))
            break;
        u64 w = RANGE_LOAD(p->kept);
        struct anon_range *kept = &set->r[(w - 1) & (MAX_RANGES - 1)];
        struct anon_range *r = &set->r[i & (MAX_RANGES - 1)];
        if (RANGE_LOAD(kept->end) == RANGE_LOAD(r->start) &&
            RANGE_LOAD(kept->cls) == RANGE_LOAD(r->cls)) {
            kept->end = RANGE_LOAD(r->end);
            continue;
        }
        set->r[w & (MAX_RANGES - 1)] = *r;
        RANGE_LOAD(p->kept) = w + 1;
    }
    if (RANGE_LOAD(set->n) > first)
        RANGE_LOAD(set->n) = RANGE_LOAD(p->kept);
}

/* Apply p to set. Returns 0, or -1 (set unchanged) when the set might not have room: a change
 * adds at most two ranges. */
static __always_inline int range_paint(struct range_set *set, struct paint *p)
{
    for (int c = 0; c <= CLASS_MASK; c++)
        p->bytes[c] = 0;
    if (RANGE_LOAD(p->end) <= RANGE_LOAD(p->start))
        return 0;
    if (RANGE_LOAD(set->n) + 2 > MAX_RANGES)
        return -1;
    range_split(set, p, RANGE_LOAD(p->start));
    p->first = RANGE_LOAD(p->lo);
    range_split(set, p, RANGE_LOAD(p->end));
    p->last = RANGE_LOAD(p->lo);
    /* r[first, last) lie inside [start, end) now: count them */
    p->bytes[CLASS_NONE] = RANGE_LOAD(p->end) - RANGE_LOAD(p->start);
    for (u64 k = 0; k < MAX_RANGES; k++) {
        u64 i = RANGE_LOAD(p->first) + k;
        if (i >= RANGE_LOAD(p->last))
            break;
        struct anon_range *r = &set->r[i & (MAX_RANGES - 1)];
        u64 len = RANGE_LOAD(r->end) - RANGE_LOAD(r->start);
        p->bytes[RANGE_LOAD(r->cls) & CLASS_MASK] += len;
        p->bytes[CLASS_NONE] -= len;
    }
    if (RANGE_LOAD(p->mode) == PAINT_FILL) {
        /* mmap: one range replaces whatever was there; munmap (fill CLASS_NONE): they go */
        int keep = RANGE_LOAD(p->fill) != CLASS_NONE;
        p->from = RANGE_LOAD(p->last);
        p->delta = (s64)RANGE_LOAD(p->first) + keep - (s64)RANGE_LOAD(p->last);
        range_shift(set, p);
        if (!keep)
            return 0;
        struct anon_range *r = &set->r[RANGE_LOAD(p->first) & (MAX_RANGES - 1)];
        r->start = RANGE_LOAD(p->start);
        r->end = RANGE_LOAD(p->end);
        r->cls = RANGE_LOAD(p->fill);
    } else {
        /* mprotect: each range inside takes its new class (unmapped pages stay unmapped) */
        for (u64 k = 0; k < MAX_RANGES; k++) {
            u64 i = RANGE_LOAD(p->first) + k;
            if (i >= RANGE_LOAD(p->last))
                break;
            struct anon_range *r = &set->r[i & (MAX_RANGES - 1)];
            r->cls = RANGE_LOAD(p->to[RANGE_LOAD(r->cls) & CLASS_MASK]);
        }
    }
    p->from = RANGE_LOAD(p->first);
    range_compact(set, p);
    return 0;
}

#endif /* HEAPTRACE_RANGES_H */
