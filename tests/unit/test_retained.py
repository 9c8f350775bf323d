"""Retained bytes: address intervals, munmap matching, mremap, brk, exec, peak."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.analysis.replay import PAGE_OF_CLASS, IntervalMap, Page, Replay, give_back
from heaptrace.analysis.retained import retained
from heaptrace.analysis.stacks import Selection
from heaptrace.events import MADV_DONTNEED, MADV_FREE, MADV_REMOVE, Event, MemClass
from tests.helpers.cli import heaptrace

A, B = ["main", "alloc_a"], ["main", "alloc_b"]
SEL = Selection(process_names=False)


def held(rec, at="exit", sel=SEL):
    return retained(rec, sel, at).folded


def test_full_munmap_releases_the_mapping(synth):
    synth.mmap(1, 0x10000, 3 * PAGE, stack=A)
    synth.mmap(2, 0x20000, PAGE, stack=B)
    synth.munmap(3, 0x10000, 3 * PAGE)
    assert held(synth.open()) == {tuple(B): PAGE}


def test_partial_munmap_splits_the_interval(synth):
    synth.mmap(1, 0x10000, 4 * PAGE, stack=A)
    synth.munmap(2, 0x10000 + PAGE, PAGE)  # a hole in the middle: two pieces stay
    synth.munmap(3, 0x10000 + 3 * PAGE, PAGE)  # then the tail
    assert held(synth.open()) == {tuple(A): 2 * PAGE}


def test_munmap_spanning_two_mappings_and_a_gap(synth):
    synth.mmap(1, 0x10000, 2 * PAGE, stack=A)
    synth.mmap(2, 0x10000 + 3 * PAGE, 2 * PAGE, stack=B)
    synth.munmap(3, 0x10000 + PAGE, 3 * PAGE)
    result = retained(synth.open(), SEL)
    assert result.folded == {tuple(A): PAGE, tuple(B): PAGE}
    assert result.unmatched == PAGE  # the gap was never mapped by a traced call


def test_munmap_of_an_unaligned_length_takes_the_whole_page(synth):
    synth.mmap(1, 0x10000, 100, stack=A)
    synth.munmap(2, 0x10000, 100)
    result = retained(synth.open(), SEL)
    assert result.folded == {}
    assert result.unmatched == 0


def test_mremap_move_keeps_the_original_stack(synth):
    synth.mmap(1, 0x10000, 2 * PAGE, stack=A)
    synth.mremap(2, 0x10000, 2 * PAGE, 0x90000, 2 * PAGE, stack=B)
    synth.munmap(3, 0x10000, 2 * PAGE)  # the old place is empty now
    rec = synth.open()
    assert held(rec) == {tuple(A): 2 * PAGE}
    assert retained(rec, SEL).unmatched == 2 * PAGE


def test_mremap_growth_belongs_to_the_mremap_and_moves_with_the_rest(synth):
    synth.mmap(1, 0x10000, 2 * PAGE, stack=A)
    synth.mremap(2, 0x10000, 2 * PAGE, 0x90000, 5 * PAGE, stack=B)
    synth.munmap(3, 0x90000 + PAGE, 2 * PAGE)  # one page of A's, one of the growth
    assert held(synth.open()) == {tuple(A): PAGE, tuple(B): 2 * PAGE}


def test_mremap_shrink_gives_back_the_end(synth):
    synth.mmap(1, 0x10000, PAGE, stack=B)
    synth.mmap(2, 0x20000, 4 * PAGE, stack=A)
    synth.mremap(3, 0x20000, 4 * PAGE, 0x20000, PAGE, stack=B)
    synth.munmap(4, 0x20000 + PAGE, 3 * PAGE)  # already gone: matches nothing
    result = retained(synth.open(), SEL)
    assert result.folded == {tuple(A): PAGE, tuple(B): PAGE}
    assert result.unmatched == 3 * PAGE


def test_brk_shrink_takes_from_the_top_of_the_heap(synth):
    synth.brk(1, 0x601000, PAGE, stack=A)
    synth.brk(2, 0x603000, 2 * PAGE, stack=B)
    synth.brk(3, 0x601800, -(PAGE + PAGE // 2), stack=["main", "trim"])
    assert held(synth.open()) == {tuple(A): PAGE, tuple(B): PAGE // 2}


def test_brk_shrink_below_the_traced_heap_counts_as_unmatched(synth):
    synth.brk(1, 0x601000, PAGE, stack=A)
    synth.brk(2, 0x5ff000, -3 * PAGE)
    result = retained(synth.open(), SEL)
    assert result.folded == {}
    assert result.unmatched == 2 * PAGE


def test_mmap_over_a_mapping_replaces_it(synth):
    synth.mmap(1, 0x10000, 4 * PAGE, stack=A)
    synth.mmap(2, 0x10000 + PAGE, PAGE, stack=B)  # MAP_FIXED in the middle
    assert held(synth.open()) == {tuple(A): 3 * PAGE, tuple(B): PAGE}


def test_exec_starts_an_empty_address_space(synth):
    synth.process(5, "sh")
    synth.mmap(1, 0x10000, PAGE, pid=5, stack=A)
    synth.process(5, "prog", at_ms=2)  # exec
    synth.munmap(3, 0x10000, PAGE, pid=5)  # the new image's: not the old mapping
    synth.mmap(4, 0x20000, 2 * PAGE, pid=5, stack=B)
    rec = synth.open()
    result = retained(rec, Selection())
    # sh never gave its page back before it exec'ed: held when that image ended
    assert result.folded == {("sh", *A): PAGE, ("prog", *B): 2 * PAGE}
    assert result.unmatched == PAGE
    assert held(rec, "peak", Selection()) == {("prog", *B): 2 * PAGE}


def test_processes_have_separate_address_spaces(synth):
    synth.process(1, "parent")
    synth.process(2, "child", at_ms=1, ppid=1)
    synth.mmap(1, 0x10000, PAGE, pid=1, stack=A)
    synth.munmap(2, 0x10000, PAGE, pid=2)
    assert held(synth.open()) == {tuple(A): PAGE}


def test_peak_is_the_moment_the_tree_held_most(synth):
    synth.process(1, "parent")
    synth.process(2, "child", at_ms=1, ppid=1, end_ms=5)
    synth.mmap(1, 0x10000, 2 * PAGE, pid=1, stack=A)
    synth.mmap(2, 0x10000, 8 * PAGE, pid=2, stack=B)  # peak: 10 pages
    synth.munmap(3, 0x10000, 4 * PAGE, pid=2)
    synth.mmap(6, 0x30000, 7 * PAGE, pid=1, stack=A)  # child gone: 9 pages
    rec = synth.open()
    peak = retained(rec, SEL, "peak")
    assert peak.folded == {tuple(A): 2 * PAGE, tuple(B): 8 * PAGE}
    assert peak.moment_ns == synth.ts(2)
    assert held(rec) == {tuple(A): 9 * PAGE, tuple(B): 4 * PAGE}


def test_window_selects_allocations_and_the_moment(synth):
    synth.mmap(1, 0x10000, PAGE, stack=A)
    synth.mmap(5, 0x20000, 2 * PAGE, stack=B)
    synth.mmap(9, 0x30000, 4 * PAGE, stack=B)
    rec = synth.open()
    assert held(rec, sel=Selection(start_s=0.002, end_s=0.006, process_names=False)) == {
        tuple(B): 2 * PAGE}
    assert held(rec, "peak", Selection(end_s=0.006, process_names=False)) == {
        tuple(A): PAGE, tuple(B): 2 * PAGE}


def test_kind_filter_shows_allocations_of_that_kind(synth):
    synth.brk(1, 0x601000, PAGE, stack=A)
    synth.mmap(2, 0x10000, PAGE, stack=B)
    assert held(synth.open(), sel=Selection(kind="brk", process_names=False)) == {
        tuple(A): PAGE}


# --- IntervalMap and the replay against a page-by-page model --------------------------

ops = st.lists(st.tuples(st.sampled_from(["map", "unmap", "advise"]), st.integers(0, 30),
                         st.integers(1, 8)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_interval_map_matches_a_page_model(operations):
    intervals, model = IntervalMap(), {}
    for n, (op, start, length) in enumerate(operations):
        pages = range(start, start + length)
        if op == "map":
            state = Page.HELD if n % 3 else Page.FILE
            intervals.insert(start, start + length, n, state)
            model.update(dict.fromkeys(pages, (n, state)))
        elif op == "advise":
            before = intervals.change(start, start + length, give_back)
            assert sum(e - s for s, e, _, _ in before) == sum(p in model for p in pages)
            for p in pages:
                if p in model and model[p][1] is Page.HELD:
                    model[p] = (model[p][0], Page.RETURNED)
        else:
            taken = intervals.remove(start, start + length)
            assert sum(e - s for s, e, _, _ in taken) == sum(p in model for p in pages)
            for p in pages:
                model.pop(p, None)
    spans = {p: (owner, state) for s, e, owner, state in intervals.spans()
             for p in range(s, e)}
    assert spans == model
    assert intervals.total == sum(state is Page.HELD for _, state in model.values())


# A naive model of one address space, page by page: {page: (owner, state)}; the replay must
# hold exactly what it holds after any sequence of calls (ARCHITECTURE.md "Event semantics").
CLASSES = [MemClass.COMMITTED, MemClass.RESERVED, MemClass.FILE, MemClass.SHARED]
HEAP, FAR = 200, 500  # page numbers: the brk heap's start, where mremap moves to
calls = st.lists(st.one_of(
    # mmap never returns page 0 (vm.mmap_min_addr); the replay reads ret 0 as "not known"
    st.tuples(st.just("mmap"), st.integers(1, 40), st.integers(1, 8), st.sampled_from(CLASSES)),
    st.tuples(st.just("munmap"), st.integers(0, 40), st.integers(1, 8)),
    st.tuples(st.just("madvise"), st.integers(0, 40), st.integers(1, 8),
              st.sampled_from([MADV_DONTNEED, MADV_FREE, MADV_REMOVE, 0])),
    st.tuples(st.just("mprotect"), st.integers(0, 40), st.integers(1, 8), st.sampled_from([0, 3])),
    st.tuples(st.just("mremap"), st.integers(0, 40), st.integers(1, 8), st.integers(1, 8),
              st.booleans()),
    st.tuples(st.just("brk"), st.integers(-4, 6)),
), max_size=40)


def page_model_step(model, brk, n, call):
    """Apply one call to the page model; returns (the event the probe would report, brk)."""
    owner = (1, n, None, call[0])
    kind = call[0]
    if kind == "brk":
        delta = max(call[1], HEAP - brk)
        pages = range(brk, brk + delta) if delta > 0 else range(brk + delta, brk)
        for p in pages:
            if delta > 0:
                model[p] = (owner, Page.HELD)
            else:
                model.pop(p, None)
        brk += delta
        return Event("brk", delta * PAGE, ts_ns=n, pid=1, ret=brk * PAGE), brk
    start, length = call[1], call[2]
    pages = range(start, start + length)
    addr, nbytes = start * PAGE, length * PAGE
    if kind == "mmap":
        for p in pages:
            model[p] = (owner, PAGE_OF_CLASS[call[3]])
        return Event("mmap", nbytes, ts_ns=n, pid=1, length=nbytes, ret=addr,
                     mem_class=call[3].code), brk
    if kind == "munmap":
        for p in pages:
            model.pop(p, None)
        return Event("munmap", nbytes, ts_ns=n, pid=1, addr=addr, length=nbytes), brk
    if kind == "madvise":
        for p in pages:
            if call[3] and p in model and model[p][1] is Page.HELD:
                model[p] = (model[p][0], Page.RETURNED)
        size = nbytes if call[3] else 0
        return Event("madvise", size, ts_ns=n, pid=1, addr=addr, length=nbytes,
                     flags=call[3]), brk
    if kind == "mprotect":
        committed = 0
        for p in pages:
            if p not in model:
                continue
            who, state = model[p]
            if call[3] and state is Page.RESERVED:
                model[p] = (owner, Page.HELD)
                committed += PAGE
            elif not call[3] and state in (Page.HELD, Page.RETURNED):
                model[p] = (who, Page.RESERVED)
        return Event("mprotect", committed, ts_ns=n, pid=1, addr=addr, length=nbytes,
                     prot=call[3]), brk
    new_length, moves = call[3], call[4]
    new = FAR + n * 10 if moves else start
    old = {i: model.pop(start + i) for i in range(length) if start + i in model}
    classes = [c for c in CLASSES
               if any(PAGE_OF_CLASS[c] is (Page.HELD if st is Page.RETURNED else st)
                      for _, st in old.values())]
    grown = classes[0] if len(classes) == 1 else MemClass.COMMITTED
    for i, value in old.items():
        if i < new_length:
            model[new + i] = value
    for i in range(length, new_length):
        model[new + i] = (owner, PAGE_OF_CLASS[grown])
    return Event("mremap", (new_length - length) * PAGE, ts_ns=n, pid=1, addr=addr,
                 length=nbytes, new_addr=new * PAGE, new_length=new_length * PAGE,
                 ret=new * PAGE, mem_class=grown.code), brk


@settings(max_examples=300, deadline=None)
@given(calls)
def test_replay_holds_what_a_page_model_holds(sequence):
    replay, model, brk = Replay(PAGE), {}, HEAP
    for n, call in enumerate(sequence):
        before = sum(state is Page.HELD for _, state in model.values())
        unmatched = replay.unmatched
        event, brk = page_model_step(model, brk, n, call)
        replay.step(event)
        after = sum(state is Page.HELD for _, state in model.values())
        taken = sum(1 for owner, state in model.values() if owner[1] == n and state is Page.HELD)
        # held pages given back (and bytes released that no traced call took, counted apart)
        given = replay.given - (replay.unmatched - unmatched)
        assert given == (before + taken - after) * PAGE, call
    want: dict = {}
    for owner, state in model.values():
        if state is Page.HELD:
            want[owner] = want.get(owner, 0) + PAGE
    got: dict = {}
    for owner, nbytes in replay.spaces[1].held() if replay.spaces else ():
        got[owner] = got.get(owner, 0) + nbytes
    assert got == want
    assert replay.total == sum(want.values())


# --- committed memory: classes, mprotect, madvise ---------------------------------------

def test_reserved_file_and_shared_mappings_are_not_held(synth):
    synth.event("mmap", 1, stack=A, size=64 * PAGE, length=64 * PAGE, ret=0x100000,
                mem_class=MemClass.RESERVED.code)
    synth.event("mmap", 2, stack=A, size=8 * PAGE, length=8 * PAGE, ret=0x200000,
                mem_class=MemClass.FILE.code)
    synth.event("mmap", 3, stack=A, size=4 * PAGE, length=4 * PAGE, ret=0x300000,
                mem_class=MemClass.SHARED.code)
    synth.mmap(4, 0x400000, 2 * PAGE, stack=B)
    assert held(synth.open()) == {tuple(B): 2 * PAGE}


def test_mprotect_commits_reserved_pages_to_its_own_stack(synth):
    # glibc's thread arena: a PROT_NONE reservation, then mprotect(READ|WRITE) piece by piece
    grow = ["main", "worker", "malloc", "grow_heap"]
    synth.event("mmap", 1, stack=A, size=64 * PAGE, length=64 * PAGE, ret=0x100000,
                mem_class=MemClass.RESERVED.code)
    synth.event("mprotect", 2, stack=grow, size=3 * PAGE, addr=0x100000, length=3 * PAGE,
                prot=3)
    synth.event("mprotect", 3, stack=grow, size=PAGE, addr=0x100000, length=4 * PAGE, prot=3)
    rec = synth.open()
    assert held(rec) == {tuple(grow): 4 * PAGE}
    assert retained(rec, Selection(kind="mprotect", process_names=False)).held == 4 * PAGE


def test_mprotect_none_gives_committed_pages_back(synth):
    synth.event("mmap", 1, stack=A, size=8 * PAGE, length=8 * PAGE, ret=0x100000,
                mem_class=MemClass.COMMITTED.code)
    synth.event("mprotect", 2, stack=B, size=-2 * PAGE, addr=0x100000 + 6 * PAGE,
                length=2 * PAGE, prot=0)
    assert held(synth.open()) == {tuple(A): 6 * PAGE}


def test_madvise_gives_back_held_pages_and_the_mapping_stays(synth):
    synth.mmap(1, 0x100000, 8 * PAGE, stack=A)
    synth.event("madvise", 2, stack=B, size=3 * PAGE, addr=0x100000 + PAGE, length=3 * PAGE,
                flags=MADV_DONTNEED)
    synth.event("madvise", 3, stack=B, size=0, addr=0x100000, length=8 * PAGE,
                flags=14)  # MADV_HUGEPAGE: nothing given back
    synth.munmap(4, 0x100000 + 2 * PAGE, PAGE)  # already given back: not unmatched
    rec = synth.open()
    result = retained(rec, SEL)
    assert result.folded == {tuple(A): 5 * PAGE}
    assert result.unmatched == 0


def test_madvise_inside_the_brk_heap(synth):
    synth.brk(1, 0x610000, 16 * PAGE, stack=A)
    synth.event("madvise", 2, stack=B, size=4 * PAGE, addr=0x604000, length=4 * PAGE,
                flags=MADV_FREE)
    synth.brk(3, 0x60e000, -2 * PAGE)
    assert held(synth.open()) == {tuple(A): 10 * PAGE}


def test_mprotect_of_pages_reserved_before_the_attach_holds_what_the_probe_counted(synth):
    # -p: the reservation was made before tracing; the probe knew it (from /proc/PID/maps)
    synth.event("mprotect", 1, stack=B, size=2 * PAGE, addr=0x100000, length=2 * PAGE, prot=3)
    synth.event("mprotect", 2, stack=B, size=0, addr=0x200000, length=2 * PAGE, prot=3)
    assert held(synth.open()) == {tuple(B): 2 * PAGE}


def test_held_at_peak_falls_when_pages_are_given_back(synth):
    synth.mmap(1, 0x100000, 8 * PAGE, stack=A)
    synth.event("madvise", 2, size=8 * PAGE, addr=0x100000, length=8 * PAGE,
                flags=MADV_DONTNEED)
    synth.mmap(3, 0x200000, 2 * PAGE, stack=B)
    rec = synth.open()
    peak = retained(rec, SEL, "peak")
    assert peak.folded == {tuple(A): 8 * PAGE}
    assert held(rec) == {tuple(B): 2 * PAGE}


def test_munmap_releases_whole_pages_of_the_recorded_page_size(synth):
    # An arm64 kernel with 16 KiB pages: munmap(addr, 100) gives back all 16 KiB.
    synth.writer.set_meta(page_size=16384)
    synth.mmap(1, 0x40000, 2 * 16384, stack=A)
    synth.munmap(2, 0x40000, 100)
    result = retained(synth.open(), SEL)
    assert result.folded == {tuple(A): 16384}
    assert result.unmatched == 0


def test_a_recording_without_a_page_size_releases_4_KiB_pages(synth):
    synth.mmap(1, 0x40000, 2 * 16384, stack=A)
    synth.munmap(2, 0x40000, 100)
    assert held(synth.open()) == {tuple(A): 2 * 16384 - PAGE}


def test_an_attached_process_is_held_at_the_end_of_tracing(synth, tmp_path):
    synth.writer.set_meta(attached=True, root_pid=1)
    synth.process(1, "server")
    synth.mmap(1, 0x100000, 4 * PAGE, stack=A)
    synth.close()
    path = str(tmp_path / "rec.db")
    report = heaptrace("report", path, check=True).stdout
    assert "still held at the end of tracing (16.0 KiB in all)" in report
    assert "held at exit" not in report
    assert "held at the end of tracing 16.0 KiB" in heaptrace("timeline", path, check=True).stdout
    svg = heaptrace("flame", path, "--retained", check=True).stdout
    assert ">Bytes held at the end of tracing<" in svg
