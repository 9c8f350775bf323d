"""The events' sums (analysis/eventsums.py), stored by the lifetimes pass or computed in one
pass, answer as the queries over the events do (Recording.taken_by_stack, mapped_by_class,
sums_by_bucket by pid, resident_sums by pid, bytes_by_stack, last_event_ns), on random events
of every kind; and grouped() (recording/grouped.py) sums as SQLite's GROUP BY does."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.eventsums import EventSums, stored_sums
from heaptrace.analysis.lifetimes import store
from heaptrace.analysis.report import build_report
from heaptrace.analysis.stacks import kinds_for
from heaptrace.events import SYSCALL_KINDS, MemClass
from heaptrace.recording import Recording
from heaptrace.recording.grouped import MAX, MIN, SUM, grouped
from tests.helpers.synth import Synth

PAGE = 4096
STACKS = [[], ["main", "a"], ["main", "b"]]
KINDS = ["brk", "mmap", "munmap", "mremap", "madvise", "mprotect", "resident"]

event = st.tuples(
    st.sampled_from(KINDS), st.sampled_from([1, 2, 3]), st.sampled_from([0, 1, 2]),
    st.integers(-4, 8),  # size in pages
    st.sampled_from([0, *(c.code for c in MemClass)]),  # mem_class
    st.sampled_from([0, 0x22, 0x02, 0x01, 0x21, 0x12]),  # mmap flags (type, anonymous)
    st.sampled_from([-1, 3]),  # fd
    st.sampled_from([0, 3]),  # prot
    st.sampled_from([0, -12]),  # ret: failed calls have a negative one
    st.integers(1, 3),  # calls
    st.integers(0, 40),  # ms
)


def write(path: str, events) -> None:
    synth = Synth(path)
    synth.process(1, "one")
    synth.process(2, "two", ppid=1)
    synth.process(3, "three", ppid=1)
    for kind, pid, stack, pages, cls, flags, fd, prot, ret, calls, ms in events:
        if kind == "resident":
            synth.resident(ms, pages * PAGE, ("anon", "file", "shmem")[stack], pid=pid,
                           stack=STACKS[stack], pages=calls)
            continue
        synth.event(kind, ms, pid, STACKS[stack], size=pages * PAGE, mem_class=cls,
                    flags=flags, fd=fd, prot=prot, calls=calls, length=abs(pages) * PAGE,
                    ret=ret if ret < 0 else 0x100000, addr=0x100000)
    synth.close()


def assert_same(rec: Recording, sums: EventSums) -> None:
    for pid in (None, 1, 2, 3, 4):
        for kind in ("growth", "mmap", "brk", "mremap", "resident", "all"):
            for committed in (False, True):
                assert sums.taken_by_stack(kinds_for(kind), pid, committed) == \
                    rec.taken_by_stack(kinds_for(kind), pid, committed), (pid, kind)
        assert sums.mapped_by_class(pid) == rec.mapped_by_class(pid)
        assert sums.calls_by_pid(pid) == rec.sums_by_bucket("pid", pid)
        assert sums.resident_by_pid(pid) == rec.resident_sums("pid", pid)
        assert sums.last_event_ns(pid) == rec.last_event_ns(pid)
    assert sums.bytes_by_stack(SYSCALL_KINDS) == rec.bytes_by_stack(SYSCALL_KINDS)


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=25))
def test_event_sums_answer_as_the_event_queries_do(tmp_path_factory, events):
    path = str(tmp_path_factory.mktemp("sums") / "rec.db")
    write(path, events)
    with Recording(path) as rec:
        assert stored_sums(rec) is None  # nothing stored: computed from the events
        computed = EventSums.of(rec)
        assert_same(rec, computed)
        before = build_report(rec)
    db = sqlite3.connect(path)
    with Recording(path) as rec:
        store(db, rec)
        db.close()
    with Recording(path) as rec:
        stored = stored_sums(rec)
        assert stored is not None
        assert sorted(stored.rows, key=repr) == sorted(computed.rows, key=repr)
        assert_same(rec, stored)
        assert build_report(rec) == before  # from the stored sums, as from the events


def test_stored_sums_are_read_not_computed_again(tmp_path):
    path = str(tmp_path / "rec.db")
    write(path, [("mmap", 1, 1, 4, 1, 0x22, -1, 3, 0, 1, 1)])
    db = sqlite3.connect(path)
    with Recording(path) as rec:
        store(db, rec)
    db.execute("UPDATE event_sums SET size = size * 10")  # visible only if read back
    db.commit()
    db.close()
    with Recording(path) as rec:
        assert build_report(rec).growth.total == 40 * PAGE


def test_sums_of_another_version_or_other_events_are_not_read(tmp_path):
    path = str(tmp_path / "rec.db")
    write(path, [("mmap", 1, 1, 4, 1, 0x22, -1, 3, 0, 1, 1)])
    db = sqlite3.connect(path)
    with Recording(path) as rec:
        store(db, rec)
    db.execute("UPDATE event_sums SET size = size * 10")
    for change in ("UPDATE event_sums_info SET version = version + 1",
                   "UPDATE event_sums_info SET events = events + 1"):
        db.execute(change)
        db.commit()
        with Recording(path) as rec:
            assert stored_sums(rec) is None
            assert build_report(rec).growth.total == 4 * PAGE
    db.close()


keys = st.one_of(st.none(), st.integers(-2, 2))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(keys, keys, st.integers(-100, 100), st.integers(-100, 100)),
                max_size=30))
def test_grouped_sums_as_group_by_does(rows):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, v, w)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    db.commit()
    want = db.execute("SELECT a, b, SUM(v), MIN(w), MAX(w) FROM t GROUP BY a, b").fetchall()
    got = grouped(db, "SELECT a, b, v, w AS lo, w AS hi FROM t", (), ["a", "b"],
                  [("v", SUM), ("lo", MIN), ("hi", MAX)])
    assert got == want
    assert not db.in_transaction  # the temporary table is gone, nothing left open
