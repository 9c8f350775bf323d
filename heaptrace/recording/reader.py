"""Reading a recording: any file a user hands over, checked before it is trusted.

Opening checks the application id, the format version and that the schema is exactly
heaptrace's (schema.py); each table's values are type-checked the first time it is read, and
a malformed value is an error naming its table and row. A recording cut short in the middle of
a write (a hot journal beside it) is read as of its last commit from a private copy; one that
a running heaptrace is writing is reported as such.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import weakref
from itertools import starmap
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from heaptrace.errors import RecordingError
from heaptrace.events import (
    GROWTH_KINDS,
    KINDS,
    SYSCALL_KINDS,
    Event,
    Frame,
    KindTotals,
    MemClass,
    Rss,
)
from heaptrace.recording.files import notice
from heaptrace.recording.grouped import MIN, grouped
from heaptrace.recording.meta import MalformedValue, RunMeta, from_rows
from heaptrace.recording.rows import (
    U64,
    RecordedMapping,
    RecordedProcess,
    RecordedRss,
    RecordedStack,
    frames_from_json,
    unpack_ips,
)
from heaptrace.recording.schema import (
    APPLICATION_ID,
    CURRENT,
    DB_ERRORS,
    EVENT_SUMS_KEYS,
    EVENT_SUMS_VALUES,
    FORMAT_VERSION,
    KNOWN,
    Layout,
    describe_difference,
    read_master,
    without_derived,
)
from heaptrace.recording.writer import EVENT_COLUMNS

DEFAULT_PATH = "heaptrace.db"
CLASS_LABELS = tuple(c.label for c in MemClass)
STACK_BATCH = 2048  # stacks a pass over all of them holds at once (stack_batches)
MAX_VALUE_BYTES = 64 << 20  # far above any real value: what a file can make a reader load
COPY_MARGIN = 64 << 20  # free space left in the temporary directory after a recovery copy

_INT = "typeof({0}) = 'integer'"
_KIND_LIST = ", ".join(f"'{k}'" for k in KINDS)
# What every events row must satisfy: a scan in SQLite finds the row a bad value is in.
_EVENTS_OK = " AND ".join(
    ["typeof(kind) = 'text'", f"kind IN ({_KIND_LIST})",
     "typeof(stack_id) IN ('integer', 'null')"]
    + [_INT.format(c) for c in EVENT_COLUMNS if c not in ("kind", "stack_id", "mem_class")])
_MEM_CLASS_OK = " AND typeof(mem_class) IN ('integer', 'null')"
# What every rss row must satisfy (as rss() checks each row it reads).
_RSS_OK = " AND ".join(
    [_INT.format(c) for c in ("ts_ns", "pid", "anon", "file", "shmem", "swap")]
    + ["typeof(space) IN ('integer', 'null')", "typeof(why) IN ('text', 'null')"])

_OPT_INT = "typeof({0}) IN ('integer', 'null')"
# What the rows of the tables derived from the events (analysis/lifetimes.py) must satisfy,
# when a recording holds them and a view reads them instead of building its own.
_DERIVED_OK = {
    "lifetimes": " AND ".join(
        [_INT.format(c) for c in ("pid", "taken_ns", "bytes", "how")]
        + [_OPT_INT.format("stack_id"), _OPT_INT.format("end_ns"), "typeof(kind) = 'text'",
           f"kind IN ({_KIND_LIST})", "how IN (0, 1, 2)"]),
    "releases": " AND ".join(_INT.format(c) for c in ("pid", "ts_ns", "bytes")),
    "lifetimes_info": " AND ".join(_INT.format(c) for c in ("version", "events")),
    "held_peaks": " AND ".join([_OPT_INT.format("pid")]
                               + [_INT.format(c) for c in ("ts_ns", "bytes")]),
    "event_sums": " AND ".join(
        [_INT.format(c) for c in ("pid", "class", "committed", "failed", "grew", "events",
                                  "calls", "size", "bytes", "first_ns", "last_ns")]
        + [_OPT_INT.format("stack_id"), "typeof(kind) = 'text'"]),
    "event_sums_info": " AND ".join(_INT.format(c) for c in ("version", "events")),
}


def _error_name(exc: Exception) -> str:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if name:
        return str(name)
    text = str(exc)
    if "locked" in text:
        return "SQLITE_BUSY"
    if "readonly" in text:
        return "SQLITE_READONLY_ROLLBACK"
    return ""


def _locked(path: str) -> RecordingError:
    return RecordingError(f"{path} is locked by another process (a heaptrace run still "
                          "recording it?)", "wait for it to finish")


def _connect_readonly(path: str) -> sqlite3.Connection:
    return guarded(sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=0.5))


def guarded(db: sqlite3.Connection) -> sqlite3.Connection:
    """How every connection to a recording reads: bounded values, lenient text."""
    # Text that is not UTF-8 reads with U+FFFD in place (as the probe decodes names) and
    # fails the value's own check, never the whole query.
    db.text_factory = functools.partial(str, encoding="utf-8", errors="replace")
    setlimit = getattr(db, "setlimit", None)  # Python 3.11+
    if setlimit is not None:
        setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    return db


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An error message from SQLite (which may quote SQL text) on one line."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _uri_path(path: str) -> str:
    return quote(os.path.abspath(path))


def _check_is_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RecordingError(f"no recording at {path}",
                             "record one with: sudo heaptrace run -- CMD") from None
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RecordingError(f"not a heaptrace recording: {path} (not a regular file)")


def validate(db: sqlite3.Connection, path: str) -> Layout:
    """Raise RecordingError unless `db` is a heaptrace recording of a format this version
    reads, with exactly one of the schemas heaptrace wrote. Returns what that schema has."""
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except DB_ERRORS as exc:
        if _error_name(exc) == "SQLITE_BUSY":
            raise _locked(path) from None
        raise RecordingError(f"not a heaptrace recording: {path}") from None
    if app_id != APPLICATION_ID:
        raise RecordingError(f"not a heaptrace recording: {path}")
    if version > FORMAT_VERSION:
        raise RecordingError(
            f"{path} was written by a newer heaptrace (format {version}, "
            f"this one reads up to {FORMAT_VERSION})",
            "upgrade heaptrace",
        )
    try:
        master = read_master(db)
    except DB_ERRORS as exc:
        raise RecordingError(f"corrupt recording {path}: {one_line(exc)}") from None
    known = KNOWN.get(without_derived(master))
    if known is None or version not in known.versions:
        raise RecordingError(f"corrupt recording {path}: its schema is not heaptrace's "
                             f"({describe_difference(without_derived(master))})")
    return known


def _copy_file(src: str, dst: str, follow: bool = True) -> None:
    nofollow = 0 if follow else os.O_NOFOLLOW
    fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | nofollow)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RecordingError(f"not a heaptrace recording: {src} (not a regular file)")
        with os.fdopen(fd, "rb", closefd=False) as f_in, open(dst, "xb") as f_out:
            shutil.copyfileobj(f_in, f_out, 1 << 20)
    finally:
        os.close(fd)


def _rolled_back_copy(path: str) -> Tuple[sqlite3.Connection, str]:
    """A private copy of a recording killed in the middle of a write, with its hot journal
    rolled back: the recording as of its last commit. Returns it open, and its directory."""
    journal = f"{path}-journal"
    try:
        st = os.lstat(journal)
        size = os.stat(path).st_size + st.st_size
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise RecordingError(f"{path} needs recovery, and its journal {journal} is not a "
                             "regular file")
    workdir = tempfile.mkdtemp(prefix="heaptrace-recover-")
    try:
        if shutil.disk_usage(workdir).free < size + COPY_MARGIN:
            raise RecordingError(
                f"{path} was cut short in the middle of a write and needs recovery; "
                f"{tempfile.gettempdir()} has no room for a private copy",
                f"run `heaptrace symbolize {path}` as its owner to roll it back in place")
        copy = os.path.join(workdir, "recording.db")
        _copy_file(path, copy)
        _copy_file(journal, copy + "-journal", follow=False)
        fix = sqlite3.connect(copy)
        try:
            fix.execute("PRAGMA application_id").fetchone()  # SQLite rolls the journal back
        finally:
            fix.close()
        db = _connect_readonly(copy)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    notice(f"{path} was cut short in the middle of a write: reading it as of its last "
           f"commit (`heaptrace symbolize {path}` repairs the file itself)")
    return db, workdir


def open_for_update(path: str) -> Tuple[sqlite3.Connection, RunMeta, Layout]:
    """A read-write connection to an existing recording (its hot journal, if any, rolled back
    in place), checked like a reader's, on the file itself and never through a link."""
    from heaptrace.recording.files import OutputError, inspect, open_directory
    from heaptrace.recording.writer import connect_verified

    _check_is_file(path)
    dirfd = open_directory(path)
    try:
        existing = inspect(dirfd, os.path.basename(path), path, APPLICATION_ID)
    finally:
        os.close(dirfd)
    if existing.kind == "locked":
        raise _locked(path)
    if existing.kind != "recording" or existing.ident is None:
        raise RecordingError(f"not a heaptrace recording: {path}")
    try:
        db = guarded(connect_verified(path, existing.ident, path))
    except OutputError as exc:
        raise RecordingError(str(exc)) from None
    try:
        layout = validate(db, path)
        rec = Recording.over(db, path, layout)
        meta = rec.meta()
        rec.check_stacks()
    except BaseException:
        db.close()
        raise
    return db, meta, layout


class Recording:
    """Read access to a recording; opening checks that it is one, of a version and schema
    this heaptrace reads. Processes, stacks and metadata are decoded once and kept."""

    _cleanup: Optional[Callable[[], object]]  # removes a recovery copy
    _layout: Layout  # what the file's schema has (older formats lack some columns)
    _checked: Set[str]  # tables whose values were checked
    _meta: Optional[RunMeta]
    _stack_rows: Optional[List[RecordedStack]]
    _stacks: Optional[Dict[int, Tuple[Frame, ...]]]
    _processes: Optional[List[RecordedProcess]]

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        self._owns_db = True
        self._reset()
        _check_is_file(path)
        try:
            self._db = _connect_readonly(path)
        except DB_ERRORS as exc:
            raise RecordingError(f"cannot read {path}: {one_line(exc)}") from None
        try:
            self._db.execute("PRAGMA schema_version").fetchone()
        except DB_ERRORS as exc:
            self._db.close()
            if _error_name(exc) == "SQLITE_BUSY":
                raise _locked(path) from None
            if _error_name(exc) != "SQLITE_READONLY_ROLLBACK":
                raise RecordingError(f"not a heaptrace recording: {path}") from None
            self._db, workdir = _rolled_back_copy(path)
            self._cleanup = weakref.finalize(self, _remove_tree, workdir)
        try:
            self._layout = validate(self._db, path)
        except BaseException:
            self.close()
            raise

    @classmethod
    def over(cls, db: sqlite3.Connection, path: str, layout: Layout = CURRENT) -> Recording:
        """A reader on a connection someone else owns (the writer's): not validated again,
        not closed by close()."""
        self = cls.__new__(cls)
        self.path, self._db, self._owns_db, self._layout = path, db, False, layout
        self._reset()
        return self

    def _reset(self) -> None:
        self._cleanup = None
        self._checked = set()
        self._meta = None
        self._stack_rows = None
        self._stacks = None
        self._processes = None

    # --- checked access ------------------------------------------------------------------

    def _corrupt(self, exc: Exception) -> RecordingError:
        if _error_name(exc) == "SQLITE_BUSY":
            return _locked(self.path)
        return RecordingError(f"corrupt recording {self.path}: {one_line(exc)}")

    def _malformed(self, table: str, row: object, what: str) -> RecordingError:
        return RecordingError(f"malformed recording {self.path}: {table} row {row}: {what}")

    def _query(self, sql: str, args: Sequence[object] = ()) -> List[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except DB_ERRORS as exc:
            raise self._corrupt(exc) from None

    def _iterate(self, sql: str, args: Sequence[object] = ()) -> Iterator[tuple]:
        """Rows from a cursor, one at a time (never the whole table in memory)."""
        try:
            cursor = self._db.execute(sql, args)
            while True:
                rows = cursor.fetchmany(1024)
                if not rows:
                    return
                yield from rows
        except DB_ERRORS as exc:
            raise self._corrupt(exc) from None

    def _check_rows(self, table: str, condition: str) -> None:
        """One scan in SQLite for a row that breaks `condition`; an error names the first."""
        if table in self._checked:
            return
        bad = self._query(f"SELECT rowid FROM {table} WHERE NOT ({condition}) LIMIT 1")
        if bad:
            row = self._query(f"SELECT * FROM {table} WHERE rowid = ?", (bad[0][0],))
            raise self._malformed(table, bad[0][0], _first_bad_value(table, row))
        self._checked.add(table)

    def _check_events(self) -> None:
        self._check_rows("events", _EVENTS_OK + (_MEM_CLASS_OK if self._layout.mem_class else ""))

    def check_derived(self, tables: Optional[Sequence[str]] = None) -> None:
        """Every row of the derived tables the file holds (or of `tables`), checked (one scan
        each)."""
        for table, condition in _DERIVED_OK.items():
            if (tables is None or table in tables) and self._has_table(table):
                self._check_rows(table, condition)

    def derived_rows(self, table: str) -> List[tuple]:
        """Every row of a table derived from the events (check_derived() checks them)."""
        if table not in _DERIVED_OK:
            raise ValueError(f"not a derived table: {table}")
        return self._query(f"SELECT * FROM {table}")

    def check_stacks(self) -> None:
        """Every stack checked, one batch at a time (none kept)."""
        if "stacks" not in self._checked:
            for _batch in self.stack_batches():
                pass
            self._checked.add("stacks")

    # --- what the run was ----------------------------------------------------------------

    def meta(self) -> RunMeta:
        """The run's metadata (fields the recording does not have keep their defaults)."""
        if self._meta is None:
            rows = self._query("SELECT key, value FROM meta ORDER BY rowid")
            try:
                self._meta, _unknown = from_rows(rows)
            except MalformedValue as exc:
                raise RecordingError(f"malformed recording {self.path}: {exc}") from None
        return self._meta

    def totals(self) -> Dict[str, KindTotals]:
        """Exact per-kind counters with their buckets, in the order they were stored."""
        result: Dict[str, KindTotals] = {}
        for row in self._query("SELECT rowid, kind, calls, failed, bytes, released FROM totals "
                               "ORDER BY rowid"):
            rowid, kind, *counts = row
            if not isinstance(kind, str) or not all(type(c) is int for c in counts):
                raise self._malformed("totals", rowid, "expected a kind name and four integers")
            result[kind] = KindTotals(*counts)
        for rowid, kind, value, count in self._query(
            "SELECT rowid, kind, value, count FROM buckets ORDER BY kind, value"
        ):
            if not isinstance(kind, str) or type(value) is not int or type(count) is not int:
                raise self._malformed("buckets", rowid, "expected a kind name and two integers")
            if not _is_bucket(value):
                raise self._malformed("buckets", rowid, f"{value} is not a quantize() bucket "
                                      "(0 or a power of two up to 2^62, or minus one)")
            result.setdefault(kind, KindTotals()).buckets[value] = count
        if self._layout.classes:  # format 1 before memory classes has no classes table
            for rowid, kind, label, nbytes in self._query(
                "SELECT rowid, kind, class, bytes FROM classes ORDER BY rowid"
            ):
                if not (isinstance(kind, str) and label in CLASS_LABELS
                        and type(nbytes) is int):
                    raise self._malformed("classes", rowid, "expected a kind name, a class "
                                          f"({', '.join(CLASS_LABELS)}) and an integer")
                result.setdefault(kind, KindTotals()).classes[label] = nbytes
        return result

    # --- events --------------------------------------------------------------------------

    def events(
        self, kinds: Optional[Sequence[str]] = None, pid: Optional[int] = None
    ) -> Iterator[Event]:
        """Events in time order, optionally only some kinds or one process; each batch of
        rows is type-checked as it comes from the cursor."""
        return starmap(Event, self.event_rows(kinds, pid))

    def event_rows(
        self, kinds: Optional[Sequence[str]] = None, pid: Optional[int] = None
    ) -> Iterator[tuple]:
        """events() as plain tuples of Event's fields (what a pass over millions of them
        builds its own rows from), checked alike."""
        sql = f"SELECT {self._event_columns()} FROM events"
        where, args = _where(kinds, pid)
        try:
            cursor = self._db.execute(sql + where + " ORDER BY ts_ns, id", args)
            while True:
                rows = cursor.fetchmany(1024)
                if not rows:
                    return
                if not _events_ok(rows):
                    self._check_events()  # names the row
                    raise self._malformed("events", "?", "a value of the wrong type")
                yield from rows
        except DB_ERRORS as exc:
            raise self._corrupt(exc) from None

    def _events_result(self, rows: List[tuple], ok: bool) -> List[tuple]:
        """Rows of an aggregate over events: if their types are wrong, the events hold a
        malformed value; one scan then finds and names it."""
        if not ok:
            self._check_events()
            raise self._malformed("events", "?", "a value of the wrong type")
        return rows

    def taken_by_stack(self, kinds: Sequence[str], pid: Optional[int] = None,
                       committed: bool = False) -> List[Tuple[Optional[int], int, int]]:
        """(stack_id, calls that took bytes, bytes taken) of some kinds, one process;
        `committed`: only growth, as calls_by_stack."""
        where, args = _where(kinds, pid)
        if committed:
            where += " AND " + committed_sql(self._layout.mem_class)
        rows = self._query(
            "SELECT stack_id, SUM(CASE WHEN size > 0 THEN calls ELSE 0 END), "
            f"SUM(CASE WHEN size > 0 THEN size ELSE 0 END) FROM events{where} "
            "GROUP BY stack_id", args)
        return self._events_result(rows, all(
            _opt_int(sid) and type(n) is int and type(b) is int for sid, n, b in rows))

    def mapped_by_class(self, pid: Optional[int] = None) -> List[Tuple[int, int, int]]:
        """(pid, MemClass code, bytes) that successful mmaps mapped and mremaps grew, by the
        class of the mapping (events.mmap_class; mremap: the probe's, when it said)."""
        cls = _class_column(self._layout.mem_class)
        sql = (f"SELECT pid, CASE WHEN kind = 'mmap' THEN {mmap_class_sql(self._layout.mem_class)} "
               f"ELSE {cls} END AS c, SUM(size) FROM events "
               "WHERE kind IN ('mmap', 'mremap') AND size > 0 AND ret >= 0")
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " AND pid = ?", (pid,)
        rows = self._query(sql + " GROUP BY pid, c", args)
        return self._events_result(rows, all(
            type(p) is int and type(c) is int and type(n) is int for p, c, n in rows))

    def sums_by_bucket(self, bucket_sql: str, pid: Optional[int] = None
                       ) -> List[Tuple[int, int, int]]:
        """(bucket, calls, committed growth) of the memory calls per group; `bucket_sql` is an SQL
        expression of the columns, {ts} naming the time column: a time bucket's index (or
        pid, to group by process)."""
        growth = ", ".join(f"'{k}'" for k in GROWTH_KINDS)
        calls = ", ".join(f"'{k}'" for k in SYSCALL_KINDS)
        sql = (f"SELECT {bucket_sql.format(ts='ts_ns')} AS b, calls AS n, "
               f"CASE WHEN kind IN ({growth}) AND size > 0 AND "
               f"{committed_sql(self._layout.mem_class)} "
               f"THEN size ELSE 0 END AS g FROM events WHERE kind IN ({calls})")
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " AND pid = ?", (pid,)
        # The expressions computed before SQLite sorts the rows into groups: its sorter then
        # holds three values a row, not every column they read (LIMIT -1 keeps the subquery
        # from being flattened): 1.2 s instead of 1.9 s on a million events. Not grouped():
        # its check of each row's types costs more than the sort saves (10M events: 16.5 s
        # of CPU against 10.9 s); SUM keeps a value of the wrong type in its result.
        rows = self._query(f"SELECT b, SUM(n), SUM(g) FROM ({sql} LIMIT -1) GROUP BY b", args)
        return self._events_result(rows, all(  # no NULL bucket: ts_ns and pid are integers
            type(b) is int and type(n) is int and type(g) is int for b, n, g in rows))

    def event_sums(self) -> List[Tuple[object, ...]]:
        """The events summed per group of what the views tell apart (EVENT_SUMS_KEYS: pid,
        stack, kind, class, whether growth, failed, grew), one pass over the events: what the
        views that sum events (report, the pids a timeline knows) read instead of the events
        (analysis/eventsums.py). class: an mmap's (events.mmap_class), a resident event's RSS
        class (its flags), else the probe's (0: not known)."""
        cls = _class_column(self._layout.mem_class)
        used = ("pid", "size", "calls", "ret", "ts_ns", "flags", "fd", "prot")
        sql = (f"SELECT pid, stack_id, kind, CASE WHEN kind = 'mmap' THEN "
               f"{mmap_class_sql(self._layout.mem_class)} WHEN kind = 'resident' THEN flags "
               f"ELSE {cls} END AS class, {committed_sql(self._layout.mem_class)} AS committed, "
               "ret < 0 AS failed, size > 0 AS grew, 1 AS events, calls, size, "
               "ABS(size) AS bytes, ts_ns AS first_ns, ts_ns AS last_ns, "
               f"{_ok_sql(used, self._layout.mem_class)} AS ok FROM events")
        rows = self._grouped(sql, (), EVENT_SUMS_KEYS, EVENT_SUMS_VALUES)
        return self._events_result(rows, all(
            type(p) is int and _opt_int(sid) and isinstance(k, str)
            and all(type(v) is int for v in values) for p, sid, k, *values in rows))

    def _grouped(self, sql: str, args: Sequence[object], keys: Sequence[str],
                 values: Sequence[Tuple[str, str]]) -> List[tuple]:
        """grouped() over events, `sql` having an `ok` column (whether the row's values have
        their types: 0 names the first bad row); the rows without it."""
        try:
            rows = grouped(self._db, sql, args, keys, [*values, ("ok", MIN)])
        except DB_ERRORS as exc:
            raise self._corrupt(exc) from None
        if any(row[-1] != 1 for row in rows):
            self._events_result([], False)
        return [row[:-1] for row in rows]

    def _has_table(self, name: str) -> bool:
        return bool(self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def py_codes(self) -> List[tuple]:
        """(pid, addr, scope, first_ns, name, qualname, filename, firstlineno,
        first_traceable, lines_format, lines) of every Python code object; none in older
        recordings."""
        if not self._has_table("pycode"):
            return []
        rows = self._query(
            "SELECT rowid, pid, addr, scope, first_ns, name, qualname, filename, firstlineno, "
            "first_traceable, lines_format, lines FROM pycode ORDER BY rowid")
        for rowid, pid, addr, scope, first, *texts_ints in rows:
            name, qualname, filename, firstlineno, traceable, fmt, lines = texts_ints
            if not (type(pid) is int and type(addr) is int and _opt_int(scope)
                    and _opt_int(first) and all(_opt_str(t) for t in (name, qualname,
                                                                      filename, fmt))
                    and _opt_int(firstlineno) and _opt_int(traceable)
                    and (lines is None or isinstance(lines, bytes))):
                raise self._malformed("pycode", rowid, "expected integers, names and a "
                                      "line table")
        return [row[1:] for row in rows]

    def py_stacks(self, first: Optional[int] = None, last: Optional[int] = None
                  ) -> Dict[int, Tuple[List[Tuple[int, int, bool, int]], bool]]:
        """stack id -> (Python frames leaf first: (code addr, bytecode offset, first of its
        C eval call, globals addr), cut) of the stacks that have Python frames (of the stack
        ids first..last, when given)."""
        if not self._has_table("pystacks"):
            return {}
        result = {}
        where = "" if first is None or last is None else " WHERE stack_id BETWEEN ? AND ?"
        args = () if not where else (first, last)
        for sid, frames, cut in self._query(f"SELECT stack_id, frames, cut FROM pystacks{where}",
                                            args):
            try:
                if not isinstance(frames, str):
                    raise ValueError
                items = json.loads(frames)
                result[sid] = ([(a, o, bool(e), g) for a, o, e, g in items], bool(cut))
                if not (type(sid) is int and all(
                        type(v) is int for f in items for v in f)):
                    raise ValueError
            except (ValueError, TypeError, RecursionError):
                raise self._malformed("pystacks", sid, "expected JSON frames "
                                      "[[code, offset, first, globals], ...]") from None
        return result

    def connection(self) -> sqlite3.Connection:
        """The checked connection, for the tables derived from the events that are stored
        beside them (analysis/lifetimes.py): their definitions were checked with the rest."""
        return self._db

    def _event_columns(self) -> str:
        """The events' columns as Event takes them: mem_class 0 where it is not known (NULL,
        or format 1 before memory classes)."""
        mem_class = "COALESCE(mem_class, 0)" if self._layout.mem_class else "0"
        return ", ".join(mem_class if c == "mem_class" else c for c in EVENT_COLUMNS)

    def calls_by_stack(
        self, kinds: Sequence[str], pid: Optional[int] = None,
        lo_ns: Optional[int] = None, hi_ns: Optional[int] = None, committed: bool = False,
    ) -> List[Tuple[int, Optional[int], str, int, int, int, int]]:
        """(pid, stack_id, kind, first ts_ns, last ts_ns, calls, sum of positive sizes) per
        process, stack and kind, of some kinds, one process and a time window; `committed`:
        only the events whose bytes are growth (events.growth)."""
        where, args = _where(kinds, pid)
        for clause, value in (("ts_ns >= ?", lo_ns), ("ts_ns <= ?", hi_ns)):
            if value is not None:
                where += f" AND {clause}"
                args.append(value)
        if committed:
            where += " AND " + committed_sql(self._layout.mem_class)
        rows = self._query(
            "SELECT pid, stack_id, kind, MIN(ts_ns), MAX(ts_ns), SUM(calls), "
            "SUM(CASE WHEN size > 0 THEN size ELSE 0 END) FROM events "
            f"{where} GROUP BY pid, stack_id, kind", args)
        return self._events_result(rows, all(
            type(p) is int and _opt_int(sid) and k in _KIND_SET
            and all(type(v) is int for v in values) for p, sid, k, *values in rows))

    def bytes_by_stack(
        self, kinds: Optional[Sequence[str]] = None,
    ) -> Dict[Optional[int], Tuple[int, int]]:
        """stack_id (None: no stack) -> (events, sum of |size|) of some kinds (or every event),
        computed in SQLite."""
        where, args = _where(kinds, None)
        rows = self._query(
            "SELECT stack_id, COUNT(*), COALESCE(SUM(ABS(size)), 0) FROM events"
            f"{where} GROUP BY stack_id", args)
        rows = self._events_result(rows, all(
            _opt_int(sid) and type(total) is int for sid, _n, total in rows))
        return {sid: (n, total) for sid, n, total in rows}

    def first_event_ns(self) -> Optional[int]:
        return self._event_time("SELECT MIN(ts_ns) FROM events")

    def last_event_ns(self, pid: Optional[int] = None) -> Optional[int]:
        sql = "SELECT MAX(ts_ns) FROM events" + (" WHERE pid = ?" if pid is not None else "")
        return self._event_time(sql, () if pid is None else (pid,))

    def _event_time(self, sql: str, args: Sequence[object] = ()) -> Optional[int]:
        value = self._query(sql, args)[0][0]
        self._events_result([], _opt_int(value))
        return value

    def event_count(self) -> int:
        return self._query("SELECT COUNT(*) FROM events")[0][0]

    def rss(self, pid: Optional[int] = None) -> List[RecordedRss]:
        """The RSS of every followed address space over time, in time order (empty for a
        recording made without it)."""
        if not self._layout.rss:
            return []
        sql = "SELECT rowid, ts_ns, pid, space, why, anon, file, shmem, swap FROM rss"
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " WHERE pid = ?", (pid,)
        result = []
        for rowid, ts, row_pid, space, why, *sizes in self._iterate(
                sql + " ORDER BY ts_ns, rowid", args):
            if not (type(ts) is int and type(row_pid) is int and _opt_int(space)
                    and _opt_str(why) and all(type(n) is int for n in sizes)):
                raise self._malformed("rss", rowid, "expected integers and a reason")
            result.append(RecordedRss(ts, row_pid, space, why or "", Rss(*sizes)))
        return result

    def rss_query(self, sql: str, args: Sequence[object] = ()) -> List[tuple]:
        """The rows of a query over the rss table (an aggregate: analysis/rss.py), its values
        checked first by one scan in SQLite; no rows for a recording made without RSS."""
        if not self._layout.rss:
            return []
        self._check_rows("rss", _RSS_OK)
        return self._query(sql, args)

    def last_rss_ns(self, pid: Optional[int] = None) -> Optional[int]:
        """When the last RSS row (of `pid`) was recorded; None without any."""
        sql = "SELECT MAX(ts_ns) FROM rss" + (" WHERE pid = ?" if pid is not None else "")
        rows = self.rss_query(sql, () if pid is None else (pid,))
        return rows[0][0] if rows else None

    def resident_sums(self, group_sql: str, pid: Optional[int] = None
                      ) -> List[Tuple[int, int, int, int]]:
        """(group, RSS class code, bytes, bytes of the positive sizes) that `resident` events
        made resident, summed in SQLite per group and class; `group_sql` is an SQL expression
        of the columns, {ts} naming the time column (a time bucket's index, or pid)."""
        sql = (f"SELECT {group_sql.format(ts='ts_ns')} AS g, flags, SUM(size), "
               "SUM(CASE WHEN size > 0 THEN size ELSE 0 END) FROM events "
               "WHERE kind = 'resident'")
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " AND pid = ?", (pid,)
        rows = self._query(sql + " GROUP BY g, flags", args)
        return self._events_result(rows, all(all(type(v) is int for v in row) for row in rows))

    # --- stacks, processes, mappings -----------------------------------------------------

    def stack_rows(self) -> List[RecordedStack]:
        """Every stored stack, decoded once."""
        if self._stack_rows is None:
            self._stack_rows = [s for batch in self.stack_batches() for s in batch]
            self._checked.add("stacks")
        return self._stack_rows

    def loaded_stacks(self) -> Optional[List[RecordedStack]]:
        """The stacks stack_rows() read already, or None (read them in batches instead)."""
        return self._stack_rows

    def stack_batches(self, size: int = STACK_BATCH,
                      frames: bool = True) -> Iterator[List[RecordedStack]]:
        """Every stored stack, checked and decoded, `size` at a time in id order and none
        kept: a pass over a whole system's stacks in bounded memory. Each batch is a query of
        its own, so the caller may rewrite the rows it was given. `frames=False`: the stored
        frames are neither read nor checked (symbolizing replaces them)."""
        ts = "ts_ns" if self._layout.stack_ts else "NULL"
        sql = (f"SELECT id, pid, {ts}, ips, {'frames' if frames else 'NULL'} FROM stacks "
               "{} ORDER BY id LIMIT ?")
        rows = self._query(sql.format(""), (size,))
        while rows:
            yield [self._stack_row(*row) for row in rows]
            if len(rows) < size:
                return
            rows = self._query(sql.format("WHERE id > ?"), (rows[-1][0], size))

    def _stack_row(self, sid: int, pid: object, ts_ns: object, ips: object,
                   frames: object) -> RecordedStack:
        if not (_opt_int(pid) and _opt_int(ts_ns) and (ips is None or isinstance(ips, bytes))):
            raise self._malformed("stacks", sid, "expected integers (pid, ts_ns) and a blob "
                                  "of addresses")
        try:
            return RecordedStack(sid, pid, ts_ns, unpack_ips(ips),  # type: ignore[arg-type]
                                 frames_from_json(frames))
        except ValueError as exc:
            raise self._malformed("stacks", sid, str(exc)) from None

    def stacks(self) -> Dict[int, Tuple[Frame, ...]]:
        """Symbolized stacks by id, leaf first; unsymbolized ones as raw hex addresses."""
        if self._stacks is None:
            self._stacks = {s.id: s.shown() for s in self.stack_rows()}
        return self._stacks

    def processes(self) -> List[RecordedProcess]:
        """One row per process image, in the order they were recorded."""
        if self._processes is None:
            rows = []
            for rowid, pid, ppid, comm, *times in self._iterate(
                    "SELECT rowid, pid, ppid, comm, start_ns, end_ns, exit_code FROM processes "
                    "ORDER BY rowid"):
                if not (type(pid) is int and _opt_int(ppid) and (comm is None or
                        isinstance(comm, str)) and all(_opt_int(t) for t in times)):
                    raise self._malformed("processes", rowid, "expected integers and a name")
                rows.append(RecordedProcess(pid, ppid, comm, *times))
            self._processes = rows
        return self._processes

    def mappings(self) -> List[RecordedMapping]:
        """Every executable mapping each process had, by pid and time."""
        result = []
        for rowid, pid, start, end, offset, path, build_id, first, last in self._iterate(
            "SELECT rowid, pid, start, end, offset, path, build_id, first_ns, last_ns "
            "FROM mappings ORDER BY pid, first_ns"
        ):
            if not (type(pid) is int and type(start) is int and type(end) is int
                    and _opt_int(offset) and _opt_int(first) and _opt_int(last)
                    and _opt_str(path) and _opt_str(build_id)):
                raise self._malformed("mappings", rowid, "expected integers, a path and a "
                                      "build-id")
            result.append(RecordedMapping(pid, start % U64, end % U64, offset or 0, path,
                                          build_id, first or 0, last))
        return result

    def close(self) -> None:
        if self._owns_db:
            self._db.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_bucket(value: int) -> bool:
    magnitude = abs(value)
    return magnitude <= 1 << 62 and magnitude & (magnitude - 1) == 0


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


_KIND_SET = frozenset(KINDS)


def _events_ok(rows: List[tuple]) -> bool:
    """Whether rows of EVENT_COLUMNS have their types: column by column, in C loops."""
    columns = list(zip(*rows))
    kind, stack_id = EVENT_COLUMNS.index("kind"), EVENT_COLUMNS.index("stack_id")
    for i, column in enumerate(columns):
        if i == kind:
            if not set(column) <= _KIND_SET:
                return False
        elif not set(map(type, column)) <= ({int, type(None)} if i == stack_id else {int}):
            return False
    return True


def _opt_int(value: object) -> bool:
    return value is None or type(value) is int


def _opt_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def _where(kinds: Optional[Sequence[str]], pid: Optional[int]) -> Tuple[str, List[object]]:
    clauses: List[str] = ["1"]
    args: List[object] = []
    if kinds is not None:
        clauses.append(f"kind IN ({', '.join('?' * len(kinds))})")
        args.extend(kinds)
    if pid is not None:
        clauses.append("pid = ?")
        args.append(pid)
    return " WHERE " + " AND ".join(clauses), args


def _ok_sql(columns: Sequence[str], mem_class: bool = False) -> str:
    """Whether a row's `columns` are integers (and stack_id an integer or NULL, kind text),
    in SQL: one value an aggregate keeps the least of."""
    checks = [_INT.format(c) for c in columns] + [
        "typeof(stack_id) IN ('integer', 'null')", "typeof(kind) = 'text'"]
    if mem_class:
        checks.append("typeof(mem_class) IN ('integer', 'null')")
    return f"({' AND '.join(checks)})"


def _class_column(mem_class: bool) -> str:
    return "COALESCE(mem_class, 0)" if mem_class else "0"


def mmap_class_sql(mem_class: bool = True) -> str:
    """events.mmap_class() in SQL: MemClass codes 1 committed, 2 reserved, 3 file, 4 shared."""
    cls = _class_column(mem_class)
    return (f"(CASE WHEN {cls} IN (1, 2, 3, 4) THEN {cls} WHEN (flags & 15) = 0 THEN 1 "
            "WHEN NOT (flags & 32 != 0 OR fd = -1) THEN 3 WHEN (flags & 15) != 2 THEN 4 "
            "WHEN (prot & 7) != 0 THEN 1 ELSE 2 END)")


def committed_sql(mem_class: bool = True) -> str:
    """The events whose positive size is committed growth: events.growth() in SQL
    (mmap_class: the probe's class, else from the flags; mremap growth of a committed or
    unknown mapping). Without the mem_class column (format 1) every class is unknown."""
    cls = _class_column(mem_class)
    return (f"(size <= 0 OR kind NOT IN ('mmap', 'mremap') OR (kind = 'mremap' AND {cls} IN "
            f"(0, 1)) OR (kind = 'mmap' AND ({cls} = 1 OR ({cls} NOT IN (2, 3, 4) AND ("
            "(flags & 15) = 0 OR ((flags & 32 != 0 OR fd = -1) AND (flags & 15) = 2 "
            "AND (prot & 7) != 0))))))")


def _first_bad_value(table: str, rows: List[tuple]) -> str:
    """Which column of a row that failed its check is wrong, in words."""
    if table in _DERIVED_OK and rows:
        return "expected integers" + (", a kind name and how 0, 1 or 2"
                                      if table == "lifetimes" else "")
    if table != "events" or not rows:
        return "a value of the wrong type"
    for column, value in zip(("id",) + EVENT_COLUMNS, rows[0]):
        if column == "kind":
            if value not in KINDS:
                return f"kind {str(value)[:40]!r} is not one of {', '.join(KINDS)}"
        elif column in ("stack_id", "mem_class"):
            if not _opt_int(value):
                return f"{column} is not an integer"
        elif type(value) is not int:
            return f"{column} is not an integer"
    return "a value of the wrong type"
