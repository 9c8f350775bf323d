"""Property tests for every parser: valid inputs round-trip, anything else fails cleanly."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heaptrace.analysis.quantize import quantize
from heaptrace.errors import ImportFormatError
from heaptrace.formats import dtrace_events
from heaptrace.formats.textinput import input_lines
from heaptrace.importers import dtrace, folded, perf
from heaptrace.render.histogram import quantize_table, total_line

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
IDENT = st.from_regex(r"[a-z_][a-z0-9_]{0,11}", fullmatch=True)
FOLDED_FRAME = st.from_regex(r"[a-zA-Z0-9_`.:<>()+\-\[\]]{1,16}", fullmatch=True)
STACK = st.lists(IDENT, min_size=1, max_size=6)


@contextmanager
def written(text: str):
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    try:
        yield path
    finally:
        os.unlink(path)


def merged(pairs):
    sums = {}
    for key, value in pairs:
        sums[key] = sums.get(key, 0) + value
    return sums


def folded_of(imported, weight="size"):
    return merged((";".join(f.name for f in reversed(s.frames)), getattr(s.event, weight))
                  for s in imported.samples)


# --- folded -----------------------------------------------------------------------------

@SETTINGS
@given(st.lists(st.tuples(st.lists(FOLDED_FRAME, min_size=1, max_size=8),
                          st.integers(0, 1 << 40)), min_size=1, max_size=20))
def test_folded_round_trip(rows):
    text = "".join(f"{';'.join(frames)} {value}\n" for frames, value in rows)
    with written(text) as path:
        imported = folded.parse(path, kind="mmap")
    assert folded_of(imported) == merged((";".join(f), v) for f, v in rows)
    assert imported.totals["mmap"].bytes == sum(v for _, v in rows)


# --- DTrace quantize() and printa() -------------------------------------------------------

BUCKETS = st.dictionaries(st.integers(0, 40).map(lambda e: 1 << e), st.integers(0, 10**6),
                          min_size=1).filter(lambda b: any(b.values()))


@SETTINGS
@given(st.sampled_from(["brk", "mmap", "munmap"]), BUCKETS, st.integers(0, 1 << 50),
       st.integers(0, 1 << 30))
def test_quantize_round_trip(kind, buckets, nbytes, calls):
    lines = quantize_table(f"{kind}() growth sizes", buckets) + [""]
    lines += [total_line("Total bytes allocated", nbytes),
              total_line(f"Total number of {kind}() calls", calls)]
    with written("\n" + "\n".join(lines) + "\n") as path:
        imported = dtrace.parse(path)
    t = imported.totals[kind]
    assert (t.bytes, t.calls) == (nbytes, calls)
    assert {v: c for v, c in t.buckets.items() if c} == {v: c for v, c in buckets.items() if c}


# --- DTrace ustack() aggregations ----------------------------------------------------------

DT_FRAME = st.tuples(IDENT, IDENT, st.integers(0, 1 << 20))


@SETTINGS
@given(st.lists(st.tuples(st.lists(DT_FRAME, min_size=1, max_size=8), st.integers(0, 1 << 40)),
                min_size=1, max_size=12))
def test_ustack_round_trip(entries):
    text = "\n"
    for frames, value in entries:
        text += "\n" + "".join(f"{' ' * 14}{m}`{f}+0x{o:x}\n" for m, f, o in frames)
        text += f"{value:>17}\n"
    with written(text) as path:
        imported = dtrace.parse(path, kind="brk")
    expected = merged((";".join(f"{m}`{f}" for m, f, _ in reversed(frames)), value)
                      for frames, value in entries)
    assert folded_of(imported) == expected


# --- perf script ----------------------------------------------------------------------------

SAMPLE = st.tuples(IDENT, st.integers(1, 99999), st.sampled_from(["brk", "mmap", "munmap"]),
                   st.integers(1, 1 << 30), st.lists(IDENT, max_size=6))


def perf_text(samples):
    text = ""
    for i, (comm, tid, kind, length, funcs) in enumerate(samples):
        args = "brk: 0x00000000" if kind == "brk" else f"addr: 0x00000000, len: 0x{length:08x}"
        text += f"{comm} {tid:>6} [001] {100 + i}.{i:06d}: syscalls:sys_enter_{kind}: {args}\n"
        text += "".join(f"\t{0x1000 + j:>16x} {fn}+0x{j:x} (/usr/lib/lib{fn}.so)\n"
                        for j, fn in enumerate(funcs))
        text += "\n"
    return text


@SETTINGS
@given(st.lists(SAMPLE, min_size=1, max_size=15))
def test_perf_round_trip(samples):
    with written(perf_text(samples)) as path:
        imported = perf.parse(path)
    expected = merged((";".join([comm] + funcs[::-1]), 1)
                      for comm, _, _, _, funcs in samples)
    assert folded_of(imported, "calls") == expected
    for kind in ("mmap", "munmap"):
        lengths = [n for _, _, k, n, _ in samples if k == kind]
        if lengths:
            assert imported.totals[kind].bytes == sum(lengths)
            assert imported.totals[kind].buckets == quantize(lengths)


# --- heaptrace-events.d output ----------------------------------------------------------------

CALL = st.tuples(st.sampled_from(["mmap", "munmap"]), st.integers(1, 1 << 30),
                 st.integers(0, 22), st.lists(IDENT, min_size=1, max_size=5))


@SETTINGS
@given(st.lists(CALL, min_size=1, max_size=15))
def test_events_round_trip(calls):
    text = "target 7\n"
    for i, (kind, length, errno, funcs) in enumerate(calls):
        ret = -1 if errno else 4096 * (i + 1)
        text += f"call {kind} {kind} 7 1 {1000 + i} 0 {length} 3 34 -1 {ret} {errno}\n\n"
        text += "".join(f"{' ' * 14}libc.so.1`{fn}+0x{j:x}\n" for j, fn in enumerate(funcs))
    with written(text) as path:
        out = dtrace_events.parse_lines(path, input_lines(path))
    imported = dtrace_events.to_imported(out)
    sizes = [0 if errno else length for _, length, errno, _ in calls]
    assert [s.event.size for s in imported.samples] == sizes
    assert [s.event.ret < 0 for s in imported.samples] == [bool(c[2]) for c in calls]
    assert [len(s.frames) for s in imported.samples] == [len(c[3]) for c in calls]


# --- anything else fails cleanly ----------------------------------------------------------------

def parse_any(fmt, path):
    if fmt == "dtrace":
        return dtrace.parse(path, kind="brk")
    if fmt == "perf":
        return perf.parse(path)
    if fmt == "folded":
        return folded.parse(path, kind="brk")
    return dtrace_events.to_imported(dtrace_events.parse_lines(path, input_lines(path)))


@SETTINGS
@given(st.sampled_from(["dtrace", "perf", "folded", "events"]), st.text(max_size=400))
def test_random_text_parses_or_fails_with_import_format_error(fmt, text):
    with written(text) as path:
        try:
            parse_any(fmt, path)
        except ImportFormatError as exc:
            assert exc.path == path and exc.line >= 0


@SETTINGS
@given(st.sampled_from(["perf", "folded", "events"]), st.lists(CALL, min_size=1, max_size=5),
       st.data())
def test_a_garbage_line_in_valid_input_is_reported_at_its_line(fmt, calls, data):
    if fmt == "perf":
        lines = perf_text([("app", 1, k, n, f) for k, n, _, f in calls]).split("\n")
    elif fmt == "folded":
        lines = [f"{';'.join(f)} {n}" for _, n, _, f in calls]
    else:
        lines = ["target 1"] + [f"call {k} {k} 1 1 5 0 {n} 0 0 0 0 0" for k, n, _, _ in calls]
    where = data.draw(st.integers(0, len(lines)))
    lines.insert(where, "%% not a valid line %%")
    with written("\n".join(lines) + "\n") as path:
        try:
            parse_any(fmt, path)
        except ImportFormatError as exc:
            assert exc.line == where + 1
        else:
            raise AssertionError("garbage accepted")


@SETTINGS
@given(BUCKETS, st.data())
def test_a_garbage_row_in_a_quantize_table_is_reported(buckets, data):
    lines = quantize_table("brk() growth sizes", buckets)
    where = data.draw(st.integers(2, len(lines)))
    lines.insert(where, data.draw(st.sampled_from(["  >= 100 |@@ 3", "   4096 |@@@ x",
                                                   "   3000 |@ 1", "garbage"])))
    with written("\n".join(lines) + "\n") as path:
        try:
            dtrace.parse(path)
        except ImportFormatError as exc:
            assert exc.line == where + 1
        else:
            raise AssertionError("garbage accepted")
