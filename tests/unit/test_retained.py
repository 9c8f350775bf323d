"""Retained bytes: address intervals, munmap matching, mremap, brk, exec, peak."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.retained import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.analysis.retained import IntervalMap, retained
from heaptrace.analysis.stacks import Selection

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
    synth.brk(3, 0x602800, -(PAGE + PAGE // 2), stack=["main", "trim"])
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


# --- IntervalMap against a page-by-page model ---------------------------------------

ops = st.lists(st.tuples(st.sampled_from(["map", "unmap"]), st.integers(0, 30),
                         st.integers(1, 8)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_interval_map_matches_a_page_model(operations):
    intervals, model = IntervalMap(), {}
    for n, (op, start, length) in enumerate(operations):
        pages = range(start, start + length)
        if op == "map":
            intervals.insert(start, start + length, n)
            model.update(dict.fromkeys(pages, n))
        else:
            taken = intervals.remove(start, start + length)
            assert sum(e - s for s, e, _ in taken) == sum(p in model for p in pages)
            for p in pages:
                model.pop(p, None)
    pieces = {p: owner for s, e, owner in intervals.pieces() for p in range(s, e)}
    assert pieces == model
    assert intervals.total == len(model)


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
