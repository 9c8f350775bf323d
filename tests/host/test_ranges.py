"""The probe's page classes (probes/ranges.h), compiled natively with a small capacity, against
a page-by-page model under random mmap, munmap and mprotect sequences (Hypothesis)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.events import MemClass

PROBES = Path(__file__).resolve().parents[2] / "probes"
CAPACITY = 16  # small, so that "full" happens too
PAGE = 4096
NONE, COMMITTED, RESERVED, FILE, SHARED = 0, 1, 2, 3, 4
PAINT_FILL, PAINT_RELABEL = 0, 1
SHIM = """
#include <stdint.h>
typedef uint64_t u64;
typedef int64_t s64;
typedef uint32_t u32;
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#include "ranges.h"
int paint(struct range_set *set, struct paint *p) { return range_paint(set, p); }
"""


class Range(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("cls", ctypes.c_uint64)]


class RangeSet(ctypes.Structure):
    _fields_ = [("lock", ctypes.c_uint64), ("n", ctypes.c_uint64), ("r", Range * CAPACITY)]


class Paint(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("fill", ctypes.c_uint64), ("to", ctypes.c_uint64 * 8),
                ("bytes", ctypes.c_uint64 * 8)] + [
        (name, ctypes.c_uint64) for name in ("lo", "hi", "first", "last", "from", "delta", "kept")]


@pytest.fixture(scope="module")
def ranges_lib(tmp_path_factory) -> ctypes.CDLL:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to compile probes/ranges.h for this test")
    out = tmp_path_factory.mktemp("ranges")
    (out / "shim.c").write_text(SHIM)
    lib = out / "ranges.so"
    subprocess.run(["gcc", "-std=gnu11", "-O1", "-Wall", "-Werror", "-shared", "-fPIC",
                    f"-DMAX_RANGES={CAPACITY}", "-DLOG2_MAX_RANGES=4", f"-I{PROBES}",
                    "-o", str(lib), str(out / "shim.c")], check=True)
    return ctypes.CDLL(str(lib))


def test_the_class_numbers_are_the_pythons():
    text = (PROBES / "ranges.h").read_text()
    for cls in MemClass:
        assert f"#define CLASS_{cls.name} {cls.code} " in text


class PageModel:
    """The reference: a class per page."""

    def __init__(self) -> None:
        self.pages: Dict[int, int] = {}

    def paint(self, start: int, end: int, mode: int, fill: int,
              to: Tuple[int, ...]) -> List[int]:
        counts = [0] * 8
        for page in range(start // PAGE, end // PAGE):
            old = self.pages.get(page, NONE)
            counts[old] += PAGE
            new = fill if mode == PAINT_FILL else to[old]
            if new == NONE:
                self.pages.pop(page, None)
            else:
                self.pages[page] = new
        return counts


def pages_of(rs: RangeSet) -> Dict[int, int]:
    pages: Dict[int, int] = {}
    last_end = -1
    for i in range(rs.n):
        r = rs.r[i]
        assert r.start < r.end and r.start % PAGE == 0 and r.end % PAGE == 0
        assert r.start >= last_end, "sorted and disjoint"
        assert r.cls in (COMMITTED, RESERVED, FILE, SHARED)
        assert not (i and r.start == last_end and rs.r[i - 1].cls == r.cls), "merged"
        last_end = r.end
        for page in range(r.start // PAGE, r.end // PAGE):
            pages[page] = r.cls
    return pages


classes = st.sampled_from([COMMITTED, RESERVED, FILE, SHARED])
spans = st.tuples(st.integers(0, 40), st.integers(1, 12))
ops = st.one_of(
    st.tuples(st.just("mmap"), spans, classes),
    st.tuples(st.just("munmap"), spans, st.just(NONE)),
    st.tuples(st.just("mprotect"), spans, st.sampled_from([COMMITTED, RESERVED])),
)


def apply(lib: ctypes.CDLL, rs: RangeSet, model: PageModel, op) -> None:
    name, (first, count), cls = op
    start, end = first * PAGE, (first + count) * PAGE
    p = Paint(start=start, end=end)
    if name == "mprotect":
        p.mode = PAINT_RELABEL
        to = (NONE, cls, cls, FILE, SHARED, 0, 0, 0)
    else:
        p.mode, p.fill = PAINT_FILL, cls
        to = (0,) * 8
    for i, value in enumerate(to):
        p.to[i] = value
    before = pages_of(rs)
    if lib.paint(ctypes.byref(rs), ctypes.byref(p)) != 0:
        assert rs.n + 2 > CAPACITY and pages_of(rs) == before  # full: nothing changed
        return
    expected = model.paint(start, end, p.mode, p.fill, to)
    assert list(p.bytes) == expected
    assert pages_of(rs) == model.pages


@settings(max_examples=400, deadline=None)
@given(st.lists(ops, max_size=40))
def test_the_probes_ranges_follow_every_page(ranges_lib, sequence):
    rs, model = RangeSet(), PageModel()
    for op in sequence:
        apply(ranges_lib, rs, model, op)


def test_an_arena_grown_by_mprotect_stays_two_ranges(ranges_lib):
    """glibc's arena: a reservation committed a step at a time from its start."""
    rs, model = RangeSet(), PageModel()
    apply(ranges_lib, rs, model, ("mmap", (0, 1024), RESERVED))
    for step in range(1, 200):
        apply(ranges_lib, rs, model, ("mprotect", (0, step * 4), COMMITTED))
        assert rs.n == 2
    assert [(rs.r[i].end - rs.r[i].start, rs.r[i].cls) for i in range(2)] == [
        (796 * PAGE, COMMITTED), (228 * PAGE, RESERVED)]
