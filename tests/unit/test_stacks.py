"""Choosing events and folding them into root-first stacks."""

from __future__ import annotations

import pytest

from heaptrace.analysis.stacks import NO_STACK, Selection, differential, fold, kinds_for
from heaptrace.errors import UsageError

MAIN = ["main", "load", "xmalloc"]


def small(synth):
    synth.process(1, "prog")
    synth.process(2, "child", at_ms=1, ppid=1)
    synth.mmap(1, 0x10000, 8192, stack=MAIN)
    synth.mmap(2, 0x20000, 4096, stack=MAIN)
    synth.brk(3, 0x601000, 4096, stack=["main", "sbrk_user"])
    synth.brk(4, 0x600000, -4096, stack=["main", "trim"])
    synth.munmap(5, 0x10000, 8192, stack=["main", "unload"])
    synth.mremap(6, 0x20000, 4096, 0x30000, 12288, stack=["main", "grow"])
    synth.mremap(7, 0x30000, 12288, 0x30000, 4096, stack=["main", "shrink"])
    synth.mmap(8, 0x40000, 65536, pid=2, stack=["main", "child_alloc"])
    synth.event("mmap", 9, size=100, length=100, ret=0x50000)  # no stack
    return synth.open()


def test_growth_folds_positive_brk_mmap_mremap_bytes_root_first(synth):
    folded = fold(small(synth), Selection())
    assert folded == {
        ("prog", "main", "load", "xmalloc"): 8192 + 4096,
        ("prog", "main", "sbrk_user"): 4096,
        ("prog", "main", "grow"): 12288 - 4096,
        ("child", "main", "child_alloc"): 65536,
        ("prog", NO_STACK): 100,
    }


def test_shrinks_are_not_growth(synth):
    folded = fold(small(synth), Selection(kind="all"))
    assert ("prog", "main", "trim") not in folded
    assert ("prog", "main", "shrink") not in folded
    assert folded[("prog", "main", "unload")] == 8192


@pytest.mark.parametrize("kind, stack", [("brk", ("main", "sbrk_user")),
                                         ("munmap", ("main", "unload")),
                                         ("mremap", ("main", "grow"))])
def test_one_kind(synth, kind, stack):
    folded = fold(small(synth), Selection(kind=kind, process_names=False))
    assert list(folded) == [stack]


def test_pid_and_no_process_names(synth):
    folded = fold(small(synth), Selection(pid=2, process_names=False))
    assert folded == {("main", "child_alloc"): 65536}


def test_time_window_is_seconds_into_the_run(synth):
    rec = small(synth)
    folded = fold(rec, Selection(start_s=0.0025, end_s=0.0065, process_names=False))
    assert set(folded) == {("main", "sbrk_user"), ("main", "grow")}
    with pytest.raises(UsageError):
        fold(rec, Selection(start_s=2, end_s=1))


def test_exec_renames_the_root_frame_from_then_on(synth):
    synth.process(7, "sh")
    synth.mmap(1, 0x10000, 4096, pid=7, stack=["main"])
    synth.process(7, "cc1", at_ms=5)
    synth.mmap(6, 0x10000, 8192, pid=7, stack=["main"])
    folded = fold(synth.open(), Selection())
    assert folded == {("sh", "main"): 4096, ("cc1", "main"): 8192}


def test_unknown_process_and_unnamed_frames(synth):
    synth.process(7, "sh")
    synth.event("mmap", 1, pid=9, stack=["", "leaf"], size=10, length=10, ret=0x1000)
    folded = fold(synth.open(), Selection())
    assert folded == {("[pid 9]", "[unknown]", "leaf"): 10}


def test_a_recording_without_processes_gets_no_process_root(synth):
    """An import of stacks alone: folded as FlameGraph's collapsers fold them."""
    synth.event("mmap", 1, pid=0, stack=["main", "leaf"], size=10, length=10, ret=0x1000)
    assert fold(synth.open(), Selection()) == {("main", "leaf"): 10}


def test_unknown_kind_is_a_usage_error():
    with pytest.raises(UsageError):
        kinds_for("sbrk")


def test_differential_pairs_the_union():
    pairs = differential({("a",): 5, ("b",): 2}, {("b",): 7, ("c",): 1})
    assert pairs == {("a",): (5, 0), ("b",): (2, 7), ("c",): (0, 1)}
