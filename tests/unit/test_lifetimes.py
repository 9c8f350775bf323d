"""The stored lifetimes (analysis/lifetimes.py) answer every held question as the replay
does (tests/helpers/replay_reference.py): held at exit and at the peak, in windows, per
process, with exec and exit ending images; and they are stored once, not rebuilt."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.lifetimes import Lifetimes, store
from heaptrace.analysis.replay import DEFAULT_PAGE_SIZE as PAGE
from heaptrace.analysis.retained import retained
from heaptrace.analysis.stacks import Selection, run_start_ns
from heaptrace.analysis.timeline import Axis, timeline
from heaptrace.events import MemClass
from heaptrace.recording import Recording
from tests.helpers import replay_reference
from tests.helpers.synth import Synth

STACKS = [["main", "a"], ["main", "b"], ["main", "c"]]
CLASSES = [c.code for c in MemClass]

call = st.one_of(
    st.tuples(st.just("mmap"), st.integers(0, 30), st.integers(1, 6), st.sampled_from(CLASSES)),
    st.tuples(st.just("munmap"), st.integers(0, 30), st.integers(1, 6)),
    st.tuples(st.just("madvise"), st.integers(0, 30), st.integers(1, 6)),
    st.tuples(st.just("mprotect"), st.integers(0, 30), st.integers(1, 6), st.sampled_from([0, 3])),
    st.tuples(st.just("mremap"), st.integers(0, 30), st.integers(1, 6), st.integers(1, 8)),
    st.tuples(st.just("brk"), st.integers(-3, 5)),
    st.tuples(st.just("exec")),
)
program = st.lists(st.tuples(st.sampled_from([1, 2]), call, st.sampled_from([0, 1, 2])),
                   max_size=30)
windows = st.tuples(st.one_of(st.none(), st.integers(0, 30)),
                    st.one_of(st.none(), st.integers(0, 30)))


def write(path: str, calls) -> None:
    synth = Synth(path)
    synth.process(1, "one")
    synth.process(2, "two", ppid=1)
    brk = {1: 0x600000, 2: 0x600000}
    for n, (pid, c, stack) in enumerate(calls, 1):
        ms, names = n, STACKS[stack]
        kind = c[0]
        if kind == "exec":
            synth.process(pid, f"exec{n}", at_ms=ms - 0.5)
            brk[pid] = 0x600000
        elif kind == "brk":
            delta = max(c[1] * PAGE, 0x600000 - brk[pid])
            brk[pid] += delta
            synth.brk(ms, brk[pid], delta, pid=pid, stack=names)
        elif kind == "mmap":
            synth.event("mmap", ms, pid, names, size=c[2] * PAGE, length=c[2] * PAGE,
                        ret=0x100000 + c[1] * PAGE, mem_class=c[3])
        elif kind == "munmap":
            synth.munmap(ms, 0x100000 + c[1] * PAGE, c[2] * PAGE, pid=pid, stack=names)
        elif kind == "madvise":
            synth.event("madvise", ms, pid, names, size=c[2] * PAGE,
                        addr=0x100000 + c[1] * PAGE, length=c[2] * PAGE, flags=4)
        elif kind == "mprotect":
            synth.event("mprotect", ms, pid, names, size=0, addr=0x100000 + c[1] * PAGE,
                        length=c[2] * PAGE, prot=c[3])
        else:
            synth.mremap(ms, 0x100000 + c[1] * PAGE, c[2] * PAGE, 0x900000 + n * 0x10000,
                         c[3] * PAGE, pid=pid, stack=names)
    synth.process(2, "two-end", at_ms=len(calls) + 1, end_ms=len(calls) + 2)
    synth.close()


@settings(max_examples=150, deadline=None)
@given(program, windows, st.sampled_from([None, 1, 2]), st.sampled_from(["growth", "mmap"]))
def test_lifetimes_answer_as_the_replay_does(tmp_path_factory, calls, window, pid, kind):
    path = str(tmp_path_factory.mktemp("lt") / "rec.db")
    write(path, calls)
    lo, hi = window
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    sel = Selection(kind=kind, pid=pid, process_names=False,
                    start_s=None if lo is None else lo / 1000,
                    end_s=None if hi is None else hi / 1000)
    with Recording(path) as rec:
        for at in ("exit", "peak"):
            want, unmatched, given_back = replay_reference.held(rec, sel, at)
            got = retained(rec, sel, at)
            assert sorted(got.pieces) == sorted(want.items()), at
            if at == "exit":
                assert got.unmatched == unmatched
            if at == "exit" and hi is None:
                assert got.given_by_pid == given_back
            if at == "peak":
                assert got.moment_ns == replay_reference.find_peak(rec, sel)[1]
        with Lifetimes(rec) as lifetimes:  # the peaks the pass kept are the query's
            for who in (None, 1, 2):
                assert lifetimes.peak(who, None, None) == \
                    lifetimes.peak_of_changes(who, None, None)


def test_stored_lifetimes_are_used_not_rebuilt(tmp_path):
    path = str(tmp_path / "rec.db")
    write(path, [(1, ("mmap", 0, 4, MemClass.COMMITTED.code), 0),
                 (1, ("munmap", 0, 1), 0)])
    import sqlite3
    with Recording(path) as rec:
        db = sqlite3.connect(path)
        store(db, rec)
        db.execute("UPDATE lifetimes SET bytes = bytes * 10")  # visible only if read back
        db.commit()
        db.close()
        with Lifetimes(rec) as lifetimes:
            assert lifetimes.held_at_exit(None) == 30 * PAGE
        assert retained(rec, Selection(process_names=False)).held == 30 * PAGE


@settings(max_examples=100, deadline=None)
@given(program, st.sampled_from([None, 1, 2]), st.integers(1, 12))
def test_timeline_buckets_are_the_replays(tmp_path_factory, calls, pid, width_ms):
    path = str(tmp_path_factory.mktemp("lt") / "rec.db")
    write(path, calls)
    with Recording(path) as rec:
        tl = timeline(rec, interval_s=width_ms / 1000, pid=pid)
        axis = Axis(run_start_ns(rec), int(tl.interval_s * 1e9), len(tl.buckets))
        want = replay_reference.buckets(rec, axis, pid)
    assert [(b.taken, b.given, b.held, b.calls) for b in tl.buckets] == want


def test_a_malformed_recording_leaves_no_scratch_database(tmp_path, monkeypatch):
    import sqlite3
    import tempfile

    import pytest

    from heaptrace.errors import RecordingError

    path = str(tmp_path / "rec.db")
    write(path, [(1, ("mmap", 0, 4, MemClass.COMMITTED.code), 0)])
    db = sqlite3.connect(path)
    db.execute("UPDATE events SET size = 'big'")
    db.commit()
    db.close()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with Recording(path) as rec, pytest.raises(RecordingError, match="size is not an integer"):
        Lifetimes(rec)
    assert list(scratch.iterdir()) == []


def test_the_replays_calls_are_events_fields():
    """replay.Call is Event as a tuple (the pass builds millions): it must keep Event's
    fields, in their order, with their defaults, or event_rows would misplace columns."""
    from dataclasses import MISSING, fields

    from heaptrace.analysis.replay import Call
    from heaptrace.events import Event
    from heaptrace.recording.writer import EVENT_COLUMNS

    assert Call._fields == EVENT_COLUMNS
    defaults = {f.name: f.default for f in fields(Event) if f.default is not MISSING}
    assert Call._field_defaults == defaults
