"""The recording format: round trips, and clear errors for anything that is not one."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.analysis.retained import retained
from heaptrace.analysis.stacks import Selection
from heaptrace.errors import RecordingError
from heaptrace.events import KINDS, Event, Frame, KindTotals, MemClass, growth, mmap_class
from heaptrace.recording import FORMAT_VERSION, RecordedProcess, Recording, RecordingWriter
from heaptrace.recording.files import RECORDING
from tests.helpers.cli import heaptrace, in_process


def _write(path, **meta):
    with RecordingWriter(str(path)) as w:
        w.set_meta(command=["prog", "a b"], lost_events=0, **meta)
        sid = w.add_stack(ips=[0x401000, 0x402000], pid=7)
        assert w.add_stack(ips=[0x401000, 0x402000], pid=7) == sid
        other = w.add_stack(frames=[Frame("malloc", "libc.so.6"), Frame("main")])
        w.add_events([Event("brk", 4096, ts_ns=5, pid=7, tid=7, addr=1, ret=2, stack_id=sid),
                      Event("mmap", 8192, ts_ns=3, pid=7, tid=8, length=8192, fd=-1,
                            stack_id=other)])
        w.add_process(7, 1, "prog", 0)
        w.end_process(7, 99, 0)
        w.set_totals({"brk": KindTotals(1, 0, 4096, 0, {4096: 1}),
                      "mmap": KindTotals(1, 0, 8192, 0, {8192: 1})})
    return sid, other


def test_round_trip(tmp_path):
    path = tmp_path / "r.db"
    sid, other = _write(path)
    with Recording(str(path)) as rec:
        assert rec.meta().command == ["prog", "a b"]
        events = list(rec.events())
        assert [e.kind for e in events] == ["mmap", "brk"]  # time order
        assert events[1] == Event("brk", 4096, ts_ns=5, pid=7, tid=7, addr=1, ret=2, stack_id=sid)
        assert [e.kind for e in rec.events(kinds=["brk"])] == ["brk"]
        stacks = rec.stacks()
        assert stacks[other] == (Frame("malloc", "libc.so.6"), Frame("main"))
        assert [f.addr for f in stacks[sid]] == [0x401000, 0x402000]
        assert rec.totals()["brk"] == KindTotals(1, 0, 4096, 0, {4096: 1})
        assert rec.processes() == [RecordedProcess(7, 1, "prog", 0, 99, 0)]


def test_existing_file_is_not_overwritten_without_force(tmp_path):
    path = tmp_path / "r.db"
    _write(path)
    with pytest.raises(RecordingError, match="will not overwrite"):
        RecordingWriter(str(path))
    RecordingWriter(str(path), RECORDING).close()


def test_foreign_sqlite_file_is_rejected(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(RecordingError, match="not a heaptrace recording"):
        Recording(str(path))


def test_garbage_and_truncated_files_are_rejected(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(RecordingError, match="not a heaptrace recording"):
        Recording(str(junk))
    good = tmp_path / "good.db"
    _write(good)
    cut = tmp_path / "cut.db"
    cut.write_bytes(good.read_bytes()[:3000])
    with pytest.raises(RecordingError), Recording(str(cut)) as rec:
        rec.totals()
        list(rec.events())


def test_newer_format_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "new.db"
    _write(path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(RecordingError, match="newer heaptrace"):
        Recording(str(path))


def test_committed_batches_survive_a_killed_writer(tmp_path):
    path = tmp_path / "killed.db"
    script = f"""
import os
from heaptrace.events import Event
from heaptrace.recording import RecordingWriter
w = RecordingWriter({str(path)!r})
w.publish()  # from here on the output holds it (a run publishes once its command started)
w.add_events([Event("mmap", 4096, ts_ns=i) for i in range(1000)])
w.commit()
w.add_events([Event("mmap", 4096, ts_ns=i) for i in range(500)])
os._exit(9)  # no commit, no close: as if killed
"""
    subprocess.run([sys.executable, "-c", script], check=False)
    with Recording(str(path)) as rec:
        assert len(list(rec.events())) == 1000


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    proc = heaptrace("histogram", str(junk))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"heaptrace: error: not a heaptrace recording: {junk}\n"


mapping_events = st.lists(st.builds(
    Event, kind=st.sampled_from(["mmap", "mremap", "brk", "mprotect"]),
    size=st.integers(-3, 5).map(lambda n: n * 4096),
    flags=st.sampled_from([0, 0x01, 0x02, 0x22, 0x21, 0x03, 0x4022]),
    prot=st.sampled_from([0, 1, 3, 4]), fd=st.sampled_from([-1, 3]),
    mem_class=st.sampled_from([0, 1, 2, 3, 4]), stack_id=st.none(),
    ts_ns=st.integers(0, 10**6)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(mapping_events)
def test_committed_sql_selects_what_growth_counts(tmp_path_factory, events):
    # flame and report sum growth in SQLite; the replay and the summary use events.growth()
    path = str(tmp_path_factory.mktemp("rec") / "r.db")
    writer = RecordingWriter(path)
    writer.add_events(events)
    writer.close()
    with Recording(path) as rec:
        rows = rec.calls_by_stack(KINDS, committed=True)
    assert sum(row[6] for row in rows) == sum(growth(e) for e in events)
    assert sum(row[5] for row in rows) == sum(1 for e in events if e.size <= 0 or growth(e))


@settings(max_examples=100, deadline=None)
@given(mapping_events)
def test_mapped_by_class_sql_is_mmap_class(tmp_path_factory, events):
    # report's per-process reserved/file/shared come from SQL; the replay uses mmap_class()
    path = str(tmp_path_factory.mktemp("rec") / "r.db")
    writer = RecordingWriter(path)
    writer.add_events(events)
    writer.close()
    with Recording(path) as rec:
        got = {(pid, code): n for pid, code, n in rec.mapped_by_class() if n}
    want: dict = {}
    for e in events:
        if e.kind in ("mmap", "mremap") and e.size > 0 and e.ret >= 0:
            code = mmap_class(e).code if e.kind == "mmap" else e.mem_class
            want[(e.pid, code)] = want.get((e.pid, code), 0) + e.size
    assert got == {k: n for k, n in want.items() if n}


def test_a_recording_killed_in_the_middle_of_a_write_is_read_as_of_its_last_commit(tmp_path):
    # a writer dies inside a transaction that spilled pages into the file: a hot journal
    path = tmp_path / "r.db"
    writer = RecordingWriter(str(path))
    writer.add_events([Event("mmap", 4096, ts_ns=1, pid=1, ret=0x10000, length=4096)])
    writer.close()
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('PRAGMA cache_size=1')\n"
        "db.execute('BEGIN')\n"
        "db.executemany('INSERT INTO meta VALUES (?, ?)',"
        " [(str(i), 'x' * 500) for i in range(5000)])\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    journal = tmp_path / "r.db-journal"
    assert journal.exists() and journal.stat().st_size > 0
    before = path.read_bytes()
    with Recording(str(path)) as rec:
        assert rec.event_count() == 1 and rec.meta().command == []
        assert retained(rec, Selection(process_names=False)).held == 4096
    assert path.read_bytes() == before and journal.exists()  # the file itself is not touched


def _killed_mid_write(path, committed: int) -> None:
    """A writer killed in the middle of a large write: its journal is hot beside the file."""
    script = f"""
import os
from heaptrace.events import Event
from heaptrace.recording import RecordingWriter
w = RecordingWriter({str(path)!r})
w.publish()
w.add_events([Event("mmap", 4096, ts_ns=i) for i in range({committed})])
w.commit()
w._db.execute("PRAGMA cache_size=8")  # pages spill into the file before the commit
w.add_events([Event("mmap", 4096, ts_ns=i, addr=i) for i in range(100000)])
os._exit(9)
"""
    subprocess.run([sys.executable, "-c", script], check=False)


def test_a_recording_killed_mid_write_is_read_as_of_its_last_commit(tmp_path, capfd):
    path = tmp_path / "killed.db"
    _killed_mid_write(path, 1000)
    journal = tmp_path / "killed.db-journal"
    assert journal.read_bytes()[:8] == b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"  # hot
    before = (path.read_bytes(), journal.read_bytes())
    with Recording(str(path)) as rec:
        assert rec.event_count() == 1000
        assert len(list(rec.events())) == 1000
    assert "cut short in the middle of a write" in capfd.readouterr().err
    assert (path.read_bytes(), journal.read_bytes()) == before  # reading changes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.db", "killed.db-journal"]
    proc = heaptrace("symbolize", str(path))
    assert proc.returncode == 0, proc.stderr
    assert not journal.exists()  # rolled back in place
    with Recording(str(path)) as rec:
        assert rec.event_count() == 1000
    assert "cut short" not in capfd.readouterr().err


def test_a_recording_being_written_is_reported_as_locked(tmp_path):
    path = tmp_path / "live.db"
    script = f"""
import sys, time
from heaptrace.recording import RecordingWriter
w = RecordingWriter({str(path)!r})
w.publish()
print("ready", flush=True)
sys.stdin.readline()
w.close()
"""
    writer = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "ready\n"
        with pytest.raises(RecordingError, match="locked by another process"):
            Recording(str(path))
        proc = heaptrace("report", str(path))
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"heaptrace: error: {path} is locked by another process")
    finally:
        writer.communicate("\n", timeout=30)
    with Recording(str(path)) as rec:
        assert rec.event_count() == 0


def test_events_come_from_a_cursor_not_a_list_of_every_row(tmp_path):
    import tracemalloc

    path = tmp_path / "many.db"
    with RecordingWriter(str(path)) as w:
        for start in range(0, 200_000, 20_000):
            w.add_events([Event("mmap", 4096, ts_ns=start + i, pid=7, addr=i)
                          for i in range(20_000)])
            w.commit()
    with Recording(str(path)) as rec:
        rec.event_count()
        tracemalloc.start()
        events = rec.events()
        first = next(events)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert first.ts_ns == 0
        assert peak < 4 << 20  # a few pages of rows, where 200,000 tuples would be ~100 MB
        assert sum(1 for _ in events) == 199_999


def test_a_report_decodes_each_stack_and_the_processes_once(tmp_path, monkeypatch):
    from heaptrace.analysis.report import build_report
    from heaptrace.recording import reader, rows
    from tests.helpers.fullrecording import write_full_recording

    path = tmp_path / "r.db"
    write_full_recording(str(path))
    decoded: list = []
    real = rows.frames_from_json
    monkeypatch.setattr(reader, "frames_from_json", lambda text: decoded.append(1) or real(text))
    queries: list = []
    with Recording(str(path)) as rec:
        rec._db.set_trace_callback(queries.append)
        build_report(rec)
        stacks = len(rec.stack_rows())
    assert len(decoded) == stacks == 3
    assert sum("FROM stacks" in q for q in queries) == 1
    assert sum("FROM processes" in q for q in queries) == 1
    assert sum("FROM meta" in q for q in queries) == 1


# The tables as heaptrace wrote them as format 1 before memory classes, verbatim (SQLite keeps
# each CREATE statement as it was written, and a reader compares them entry for entry).
FORMAT_1_BEFORE_CLASSES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE processes (
    pid INTEGER NOT NULL, ppid INTEGER, comm TEXT, start_ns INTEGER, end_ns INTEGER,
    exit_code INTEGER
);
CREATE TABLE stacks (
    id INTEGER PRIMARY KEY, key BLOB UNIQUE NOT NULL, pid INTEGER,
    ts_ns INTEGER, -- first seen: says which image of the pid (before or after an exec) it ran
    ips BLOB,      -- raw user addresses, leaf first, little-endian u64: kept for re-symbolizing
    frames TEXT    -- JSON [[name, module, addr], ...], leaf first; NULL until symbolized
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL, ts_ns INTEGER,
    pid INTEGER, tid INTEGER, addr INTEGER, length INTEGER, prot INTEGER, flags INTEGER,
    fd INTEGER, ret INTEGER, stack_id INTEGER REFERENCES stacks(id), calls INTEGER NOT NULL,
    new_addr INTEGER, new_length INTEGER
);
CREATE TABLE totals (
    kind TEXT PRIMARY KEY, calls INTEGER NOT NULL, failed INTEGER NOT NULL,
    bytes INTEGER NOT NULL, released INTEGER NOT NULL
);
CREATE TABLE buckets (
    kind TEXT NOT NULL, value INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE mappings (
    pid INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, offset INTEGER,
    path TEXT, build_id TEXT, first_ns INTEGER, last_ns INTEGER
);
CREATE TABLE samples (ts_ns INTEGER NOT NULL, pid INTEGER NOT NULL, rss INTEGER, vms INTEGER);
"""
CLASSES_TABLE = """CREATE TABLE classes (
    kind TEXT NOT NULL, class TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (kind, class)
);
"""
ANON, FILE_MAP = (0x22, 3, -1), (0x2, 5, 3)  # (flags, prot, fd): private anonymous; a file


def _format_1(path, with_classes: bool = False) -> None:
    """A format 1 recording of two mmaps (anonymous, file-backed), as heaptrace wrote one."""
    db = sqlite3.connect(path)
    schema = FORMAT_1_BEFORE_CLASSES
    if with_classes:
        schema = schema.replace("CREATE TABLE mappings", CLASSES_TABLE + "CREATE TABLE mappings")
    db.executescript(schema)
    db.execute("PRAGMA application_id=0x48545243")
    db.execute("PRAGMA user_version=1")
    db.executemany("INSERT INTO meta VALUES (?, ?)",
                   [("source", '"ebpf"'), ("command_line", '"old"'), ("complete", "true")])
    for ts, (flags, prot, fd) in ((1, ANON), (2, FILE_MAP)):
        db.execute("INSERT INTO events (kind, size, ts_ns, pid, tid, addr, length, prot, flags, "
                   "fd, ret, stack_id, calls, new_addr, new_length) "
                   "VALUES ('mmap', 8192, ?, 7, 7, 0, 8192, ?, ?, ?, ?, NULL, 1, 0, 0)",
                   (ts, prot, flags, fd, ts << 20))
    db.execute("INSERT INTO totals VALUES ('mmap', 2, 0, 16384, 0)")
    if with_classes:
        db.executemany("INSERT INTO classes VALUES ('mmap', ?, 8192)", [("committed",), ("file",)])
    db.commit()
    db.close()


def test_a_recording_is_format_2_and_keeps_memory_classes(tmp_path):
    path = tmp_path / "r.db"
    with RecordingWriter(str(path)) as w:
        w.add_events([Event("mmap", 8192, ts_ns=1, length=8192, prot=0, flags=0x22, fd=-1,
                            mem_class=MemClass.RESERVED.code),
                      Event("mprotect", 4096, ts_ns=2, length=4096, prot=3,
                            mem_class=MemClass.COMMITTED.code)])
        w.set_totals({"mmap": KindTotals(1, 0, 8192, 0, {8192: 1}, {"reserved": 8192})})
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 2
    db.close()
    with Recording(str(path)) as rec:
        mmap, mprotect = rec.events()
        assert (mmap.mem_class, mprotect.mem_class) == (2, 1)
        assert growth(mmap) == 0  # reserved address space is not growth
        assert rec.totals()["mmap"].classes == {"reserved": 8192}


@pytest.mark.parametrize("with_classes", [False, True])
def test_format_1_is_read_with_mmaps_classified_by_their_flags(tmp_path, with_classes):
    path = tmp_path / "old.db"
    _format_1(path, with_classes)
    with Recording(str(path)) as rec:
        anon, mapped = rec.events()
        assert (anon.mem_class, mapped.mem_class) == (0, 0)  # not known: no column
        assert (growth(anon), growth(mapped)) == (8192, 0)  # a file mapping is not growth
        classes = rec.totals()["mmap"].classes
    assert classes == ({"committed": 8192, "file": 8192} if with_classes else {})
    for view in (["report"], ["histogram"], ["flame", "--folded"], ["timeline", "--json"]):
        code, _, err = in_process(*view, str(path))
        assert code == 0, (view, err)
    proc = heaptrace("symbolize", str(path))  # updated in place, in its own format
    assert proc.returncode == 0, proc.stderr
    with Recording(str(path)) as rec:
        assert len(list(rec.events())) == 2


def test_format_1_with_the_schema_of_format_2_is_read(tmp_path):
    path = tmp_path / "r.db"
    _write(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=1")  # as heaptrace wrote it before the version said classes
    db.commit()
    db.close()
    with Recording(str(path)) as rec:
        assert [e.kind for e in rec.events()] == ["mmap", "brk"]
    db = sqlite3.connect(path)
    db.execute("DROP TABLE rss")  # as heaptrace wrote it before the exact RSS
    db.commit()
    db.close()
    with Recording(str(path)) as rec:
        assert rec.rss() == [] and [e.kind for e in rec.events()] == ["mmap", "brk"]
    code, _, err = in_process("timeline", str(path))
    assert code == 0, err
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE events DROP COLUMN mem_class")  # format 2 must have its columns
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    with pytest.raises(RecordingError, match="its schema is not heaptrace's"):
        Recording(str(path))
