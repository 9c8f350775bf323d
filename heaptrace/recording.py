"""The recording file: one SQLite database, the single owner of heaptrace's on-disk format.

Every source (eBPF, DTrace, imports) writes the same tables, so analysis and rendering never
care where a recording came from. Writes go in batches inside transactions: whatever was
committed before a crash or a kill stays readable.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import shutil
import sqlite3
import stat
import struct
import tempfile
from dataclasses import fields
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from heaptrace.errors import RecordingError
from heaptrace.events import GROWTH_KINDS, SYSCALL_KINDS, Event, Frame, KindTotals, Rss

APPLICATION_ID = 0x48545243  # "HTRC": tells a heaptrace recording from any other SQLite file
FORMAT_VERSION = 1
DEFAULT_PATH = "heaptrace.db"
# The events whose positive size is committed growth: events.growth() in SQL (mmap_class:
# the probe's class, else from the flags; mremap growth of a committed or unknown mapping).
_CLASS = "COALESCE(mem_class, 0)"
COMMITTED_SQL = (
    f"(size <= 0 OR kind NOT IN ('mmap', 'mremap') OR (kind = 'mremap' AND {_CLASS} IN (0, 1)) OR "
    f"(kind = 'mmap' AND ({_CLASS} = 1 OR ({_CLASS} NOT IN (2, 3, 4) AND ("
    "(flags & 15) = 0 OR ((flags & 32 != 0 OR fd = -1) AND (flags & 15) = 2 "
    "AND (prot & 7) != 0))))))")
# events.mmap_class() in SQL: MemClass codes 1 committed, 2 reserved, 3 file, 4 shared.
MMAP_CLASS_SQL = (
    f"(CASE WHEN {_CLASS} IN (1, 2, 3, 4) THEN {_CLASS} WHEN (flags & 15) = 0 THEN 1 "
    "WHEN NOT (flags & 32 != 0 OR fd = -1) THEN 3 WHEN (flags & 15) != 2 THEN 4 "
    "WHEN (prot & 7) != 0 THEN 1 ELSE 2 END)")

SCHEMA = """
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
    new_addr INTEGER, new_length INTEGER,
    mem_class INTEGER -- events.MemClass code the probe gave: what an mmap mapped, an mremap
                      -- moved, an mprotect committed or released; 0 or NULL: not known
);
CREATE TABLE totals (
    kind TEXT PRIMARY KEY, calls INTEGER NOT NULL, failed INTEGER NOT NULL,
    bytes INTEGER NOT NULL, released INTEGER NOT NULL
);
CREATE TABLE buckets (
    kind TEXT NOT NULL, value INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE classes (
    kind TEXT NOT NULL, class TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (kind, class)
);
CREATE TABLE mappings (
    pid INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, offset INTEGER,
    path TEXT, build_id TEXT, first_ns INTEGER, last_ns INTEGER
);
-- RSS sampled every 0.25 s by earlier versions; written no more (rss holds the exact counters)
CREATE TABLE samples (ts_ns INTEGER NOT NULL, pid INTEGER NOT NULL, rss INTEGER, vms INTEGER);
CREATE TABLE rss (
    ts_ns INTEGER NOT NULL, pid INTEGER NOT NULL,
    space INTEGER,  -- the address space (the kernel's mm_id): a pid has one per image
    why TEXT,       -- start, change, now, peak (that space's exact peak) or end (emptied)
    anon INTEGER NOT NULL, file INTEGER NOT NULL, shmem INTEGER NOT NULL, swap INTEGER NOT NULL
);
CREATE TABLE pycode (  -- Python code objects, named once per process (stacks/python/)
    pid INTEGER NOT NULL, addr INTEGER NOT NULL,
    scope INTEGER, -- the globals of the frames it ran in: (addr, scope) names one code object
    first_ns INTEGER, name TEXT, qualname TEXT,
    filename TEXT, firstlineno INTEGER,
    first_traceable INTEGER, -- bytecode offset of the first instruction a traceback shows
    lines_format TEXT, lines BLOB -- the line table: what gives a frame its line
);
CREATE TABLE pystacks (  -- the Python frames of a stack's calling thread
    stack_id INTEGER PRIMARY KEY REFERENCES stacks(id),
    frames TEXT NOT NULL, -- JSON [[code addr, bytecode offset, 1: its C eval call's first,
                          --        globals addr], ...] leaf first
    cut INTEGER NOT NULL  -- 1: the chain went on beyond these frames
);
"""
# Tables added since format 1 was fixed: absent from older recordings, read as empty.
LATER_TABLES = ("pycode", "pystacks")

EVENT_COLUMNS = tuple(f.name for f in fields(Event))
# An event's committed growth in SQL, as events.growth() says: positive sizes, but not of
# mappings (or their mremap growth) that are reserved, file or shared; an mmap the probe did
# not classify (an import, an older recording) by its flags.
COMMITTED_SIZE = (
    "CASE WHEN size <= 0 THEN 0 "
    "WHEN kind IN ('mmap', 'mremap') AND COALESCE(mem_class, 0) NOT IN (0, 1) THEN 0 "
    "WHEN kind = 'mmap' AND COALESCE(mem_class, 0) = 0 AND (flags & 15) != 0 AND NOT ("
    "((flags & 32) != 0 OR fd = -1) AND (flags & 15) = 2 AND (prot & 7) != 0) THEN 0 "
    "ELSE size END")
_event_row = operator.attrgetter(*EVENT_COLUMNS)  # dataclasses.astuple deep-copies: far slower
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)


class RecordedRss(NamedTuple):
    """The RSS of one address space of a process at one moment, from the kernel's counters."""

    ts_ns: int
    pid: int
    space: Optional[int]
    why: str
    rss: Rss


def pack_ips(ips: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(ips)}Q", *ips)


def unpack_ips(blob: Optional[bytes]) -> Tuple[int, ...]:
    if not blob:
        return ()
    return struct.unpack(f"<{len(blob) // 8}Q", blob)


# (code addr, bytecode offset, first of its C eval call, globals addr)
PyFrames = Sequence[Tuple[int, int, bool, int]]


def _stack_key(
    pid: Optional[int], ips: Sequence[int], frames: Optional[Sequence[Frame]], image: int = 0,
    py: Optional[PyFrames] = None,
) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{pid}/{image}".encode() if image else str(pid).encode())
    h.update(pack_ips(ips))
    if frames is not None and not ips:
        h.update(json.dumps([[f.name, f.module] for f in frames]).encode())
    if py:
        h.update(b"py" + json.dumps(_py_json(py)).encode())
    return h.digest()


def _py_json(py: PyFrames) -> List[List[int]]:
    return [[addr, offset, int(entry), scope] for addr, offset, entry, scope in py]


def _frames_json(frames: Optional[Sequence[Frame]]) -> Optional[str]:
    if frames is None:
        return None
    return json.dumps([[f.name, f.module, f.addr] for f in frames])


def _frames_from_json(text: Optional[str]) -> Optional[Tuple[Frame, ...]]:
    if text is None:
        return None
    return tuple(Frame(name, module, addr) for name, module, addr in json.loads(text))


class RecordingWriter:
    """Creates a recording and fills it; call `commit()` after each batch."""

    def __init__(self, path: str, force: bool = False) -> None:
        if os.path.exists(path):
            if not force:
                raise RecordingError(
                    f"file already exists, will not overwrite without --force: {path}"
                )
            os.unlink(path)
        self.path = path
        try:
            self._db = sqlite3.connect(path)
        except sqlite3.Error as exc:
            raise RecordingError(f"cannot create recording {path}: {exc}") from None
        self._db.execute("PRAGMA journal_mode=DELETE")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self._db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        self._stack_ids: Dict[bytes, int] = {}
        self.commit()

    def _ensure_later_tables(self) -> None:
        """Tables newer than a recording being updated in place (CREATE IF NOT EXISTS)."""
        for statement in SCHEMA.split(";"):
            if any(f"CREATE TABLE {name} (" in statement for name in LATER_TABLES):
                self._db.execute(statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))

    @classmethod
    def open_existing(cls, path: str) -> RecordingWriter:
        """Reopen a recording to update it in place (e.g. `heaptrace symbolize`)."""
        Recording(path).close()  # the same checks and messages as for reading
        self = cls.__new__(cls)
        self.path = path
        try:
            self._db = sqlite3.connect(path)
            rows = self._db.execute("SELECT key, id FROM stacks").fetchall()
        except sqlite3.Error as exc:
            raise RecordingError(f"cannot update recording {path}: {exc}") from None
        self._stack_ids = dict(rows)
        self._ensure_later_tables()
        return self

    def set_meta(self, **values: object) -> None:
        """Store run metadata; values are kept as JSON so numbers and lists survive."""
        self._db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in values.items()],
        )

    def add_stack(
        self,
        ips: Sequence[int] = (),
        frames: Optional[Sequence[Frame]] = None,
        pid: Optional[int] = None,
        image: int = 0,
        ts_ns: Optional[int] = None,
        py: Optional[PyFrames] = None,
        py_cut: bool = False,
    ) -> int:
        """Store a stack once (deduplicated by address space, exec image, addresses and
        Python frames, or by frames when there are no addresses) and return its id. `py`:
        the Python frames of the calling thread (table pystacks)."""
        key = _stack_key(pid, ips, frames, image, py)
        stack_id = self._stack_ids.get(key)
        if stack_id is None:
            cur = self._db.execute(
                "INSERT INTO stacks (key, pid, ts_ns, ips, frames) VALUES (?, ?, ?, ?, ?)",
                (key, pid, ts_ns, pack_ips(ips) if ips else None, _frames_json(frames)),
            )
            stack_id = cur.lastrowid
            assert stack_id is not None  # set by every INSERT
            self._stack_ids[key] = stack_id
            if py:
                self._db.execute(
                    "INSERT INTO pystacks (stack_id, frames, cut) VALUES (?, ?, ?)",
                    (stack_id, json.dumps(_py_json(py)), int(py_cut)))
        return stack_id

    def add_py_code(
        self, pid: int, addr: int, scope: int, first_ns: int, name: str, qualname: str,
        filename: str, firstlineno: int, first_traceable: int, lines_format: str, lines: bytes,
    ) -> None:
        """A Python code object of `pid` at `addr` run with the globals at `scope`, first
        seen at `first_ns`."""
        self._db.execute(
            "INSERT INTO pycode (pid, addr, scope, first_ns, name, qualname, filename, "
            "firstlineno, first_traceable, lines_format, lines) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, addr, scope, first_ns, name, qualname, filename, firstlineno, first_traceable,
             lines_format, lines))

    def set_stack_frames(self, stack_id: int, frames: Sequence[Frame]) -> None:
        self._db.execute(
            "UPDATE stacks SET frames = ? WHERE id = ?", (_frames_json(frames), stack_id)
        )

    def add_events(self, events: Iterable[Event]) -> None:
        self._db.executemany(_INSERT_EVENT, map(_event_row, events))

    def add_process(
        self, pid: int, ppid: Optional[int], comm: Optional[str], start_ns: Optional[int]
    ) -> None:
        self._db.execute(
            "INSERT INTO processes (pid, ppid, comm, start_ns) VALUES (?, ?, ?, ?)",
            (pid, ppid, comm, start_ns),
        )

    def end_process(self, pid: int, end_ns: int, exit_code: Optional[int] = None) -> None:
        self._db.execute(
            "UPDATE processes SET end_ns = ?, exit_code = COALESCE(?, exit_code) "
            "WHERE rowid = (SELECT MAX(rowid) FROM processes WHERE pid = ?)",
            (end_ns, exit_code, pid),
        )

    def rename_process(self, pid: int, comm: str) -> None:
        self._db.execute(
            "UPDATE processes SET comm = ? "
            "WHERE rowid = (SELECT MAX(rowid) FROM processes WHERE pid = ?)",
            (comm, pid),
        )

    def add_mapping(
        self, pid: int, start: int, end: int, offset: int, path: str,
        build_id: Optional[str], first_ns: int, last_ns: Optional[int] = None,
    ) -> None:
        """An executable mapping of `pid` from `first_ns` until `last_ns` (None: until exit)."""
        self._db.execute(
            "INSERT INTO mappings (pid, start, end, offset, path, build_id, first_ns, last_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, start, end, offset, path, build_id, first_ns, last_ns),
        )

    def delete_mappings(self, pid: int) -> None:
        self._db.execute("DELETE FROM mappings WHERE pid = ?", (pid,))

    def add_rss(self, rows: Iterable[RecordedRss]) -> None:
        self._db.executemany(
            "INSERT INTO rss (ts_ns, pid, space, why, anon, file, shmem, swap) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.ts_ns, r.pid, r.space, r.why, r.rss.anon, r.rss.file, r.rss.shmem, r.rss.swap)
             for r in rows])

    def set_totals(self, totals: Dict[str, KindTotals]) -> None:
        """Replace the exact per-kind counters and their power-of-two buckets."""
        self._db.execute("DELETE FROM totals")
        self._db.execute("DELETE FROM buckets")
        self._db.execute("DELETE FROM classes")
        for kind, t in totals.items():
            self._db.executemany(
                "INSERT INTO classes (kind, class, bytes) VALUES (?, ?, ?)",
                [(kind, c, n) for c, n in t.classes.items()],
            )
            self._db.execute(
                "INSERT INTO totals (kind, calls, failed, bytes, released) VALUES (?, ?, ?, ?, ?)",
                (kind, t.calls, t.failed, t.bytes, t.released),
            )
            self._db.executemany(
                "INSERT INTO buckets (kind, value, count) VALUES (?, ?, ?)",
                [(kind, v, c) for v, c in sorted(t.buckets.items())],
            )

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recovered_copy(path: str) -> Optional[str]:
    """A private copy of a recording whose writer was killed in the middle of a write, its hot
    journal rolled back (SQLite cannot roll back read-only, and the file may be another
    user's); None when there is no journal to roll back."""
    journal = f"{path}-journal"
    try:
        st = os.lstat(journal)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return None
    scratch = tempfile.mkdtemp(prefix="heaptrace-recovered-")
    copy = os.path.join(scratch, "recording.db")
    try:
        shutil.copyfile(path, copy)
        shutil.copyfile(journal, copy + "-journal", follow_symlinks=False)
        fix = sqlite3.connect(copy)
        try:
            fix.execute("PRAGMA application_id").fetchone()  # SQLite rolls the journal back
        finally:
            fix.close()
    except (OSError, sqlite3.DatabaseError):
        shutil.rmtree(scratch, ignore_errors=True)
        return None
    return copy


class Recording:
    """Read access to a recording; opening checks that it is one, and a version we read."""

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = path
        if not os.path.isfile(path):
            raise RecordingError(
                f"no recording at {path}", "record one with: sudo heaptrace run -- CMD"
            )
        self.read_path = path  # the file read: a private copy when `path` needed recovery
        self._scratch: Optional[str] = None
        try:
            app_id, version = self._open(path)
        except sqlite3.DatabaseError:
            copy = recovered_copy(path)
            if copy is None:
                raise RecordingError(f"not a heaptrace recording: {path}") from None
            self._scratch, self.read_path = os.path.dirname(copy), copy
            try:
                app_id, version = self._open(copy)
            except sqlite3.DatabaseError:
                self.close()
                raise RecordingError(f"not a heaptrace recording: {path}") from None
        if app_id != APPLICATION_ID:
            raise RecordingError(f"not a heaptrace recording: {path}")
        if version > FORMAT_VERSION:
            raise RecordingError(
                f"{path} was written by a newer heaptrace (format {version}, "
                f"this one reads up to {FORMAT_VERSION})",
                "upgrade heaptrace",
            )

    def _open(self, path: str) -> Tuple[int, int]:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        return app_id, version

    def _query(self, sql: str, args: Sequence[object] = ()) -> List[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"corrupt recording {self.path}: {exc}") from None

    def meta(self) -> Dict[str, Any]:
        """Run metadata as stored: JSON values, whose shape depends on the key."""
        return {k: json.loads(v) for k, v in self._query("SELECT key, value FROM meta")}

    def totals(self) -> Dict[str, KindTotals]:
        """Exact per-kind counters with their buckets, in the order they were stored."""
        result: Dict[str, KindTotals] = {}
        for kind, calls, failed, nbytes, released in self._query(
            "SELECT kind, calls, failed, bytes, released FROM totals ORDER BY rowid"
        ):
            result[kind] = KindTotals(calls, failed, nbytes, released)
        for kind, value, count in self._query(
            "SELECT kind, value, count FROM buckets ORDER BY kind, value"
        ):
            result.setdefault(kind, KindTotals()).buckets[value] = count
        if self._has_table("classes"):  # recordings of heaptrace 0.x before classes lack it
            for kind, cls, nbytes in self._query(
                "SELECT kind, class, bytes FROM classes ORDER BY rowid"
            ):
                result.setdefault(kind, KindTotals()).classes[cls] = nbytes
        return result

    def _has_table(self, name: str) -> bool:
        return bool(self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def _committed_size(self) -> str:
        if "mem_class" in self._columns("events"):
            return COMMITTED_SIZE
        return COMMITTED_SIZE.replace("COALESCE(mem_class, 0)", "0")

    def _columns(self, table: str) -> set:
        return {row[1] for row in self._query(f"PRAGMA table_info({table})")}

    def _event_columns(self) -> str:
        """The events' columns; a recording from before mem_class reads it as 0."""
        have = self._columns("events")
        return ", ".join(c if c in have else f"0 AS {c}" for c in EVENT_COLUMNS)

    def events(
        self, kinds: Optional[Sequence[str]] = None, pid: Optional[int] = None
    ) -> Iterator[Event]:
        """Events in time order, optionally only some kinds or one process."""
        sql = f"SELECT {self._event_columns()} FROM events"
        where: List[str] = []
        args: List[object] = []
        if kinds is not None:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args.extend(kinds)
        if pid is not None:
            where.append("pid = ?")
            args.append(pid)
        if where:
            sql += " WHERE " + " AND ".join(where)
        for row in self._query(sql + " ORDER BY ts_ns, id", args):
            yield Event(*row)

    def calls_by_stack(
        self, kinds: Sequence[str], pid: Optional[int] = None,
        lo_ns: Optional[int] = None, hi_ns: Optional[int] = None, committed: bool = False,
    ) -> List[Tuple[int, Optional[int], str, int, int, int, int]]:
        """(pid, stack_id, kind, first ts_ns, last ts_ns, calls, sum of positive sizes) per
        process, stack and kind, of some kinds, one process and a time window; `committed`:
        only the events whose bytes are growth (events.growth)."""
        where, args = self._window(kinds, pid, lo_ns, hi_ns)
        if committed:
            where += f" AND {COMMITTED_SQL}"
        return self._query(
            "SELECT pid, stack_id, kind, MIN(ts_ns), MAX(ts_ns), SUM(calls), "
            "SUM(CASE WHEN size > 0 THEN size ELSE 0 END) FROM events "
            f"WHERE {where} GROUP BY pid, stack_id, kind", args)

    def taken_by_stack(self, kinds: Sequence[str], pid: Optional[int] = None,
                       committed: bool = False) -> List[Tuple[Optional[int], int, int]]:
        """(stack_id, calls that took bytes, bytes taken) of some kinds, one process;
        `committed`: only growth, as calls_by_stack."""
        where, args = self._window(kinds, pid, None, None)
        if committed:
            where += f" AND {COMMITTED_SQL}"
        return self._query(
            "SELECT stack_id, SUM(CASE WHEN size > 0 THEN calls ELSE 0 END), "
            f"SUM(CASE WHEN size > 0 THEN size ELSE 0 END) FROM events WHERE {where} "
            "GROUP BY stack_id", args)

    def mapped_by_class(self, pid: Optional[int] = None) -> List[Tuple[int, int, int]]:
        """(pid, MemClass code, bytes) that successful mmaps mapped and mremaps grew, by the
        class of the mapping (events.mmap_class; mremap: the probe's, when it said)."""
        sql = (f"SELECT pid, CASE WHEN kind = 'mmap' THEN {MMAP_CLASS_SQL} "
               f"ELSE {_CLASS} END AS c, SUM(size) FROM events "
               "WHERE kind IN ('mmap', 'mremap') AND size > 0 AND ret >= 0")
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " AND pid = ?", (pid,)
        return self._query(sql + " GROUP BY pid, c", args)

    def sums_by_bucket(self, bucket_sql: str, pid: Optional[int] = None
                       ) -> List[Tuple[int, int, int]]:
        """(bucket, calls, committed growth) of the memory calls per group; `bucket_sql` is an SQL
        expression of the columns, {ts} naming the time column: a time bucket's index (or
        pid, to group by process)."""
        growth = ", ".join(f"'{k}'" for k in GROWTH_KINDS)
        calls = ", ".join(f"'{k}'" for k in SYSCALL_KINDS)
        sql = (f"SELECT {bucket_sql.format(ts='ts_ns')} AS b, SUM(calls), "
               f"SUM(CASE WHEN kind IN ({growth}) AND size > 0 AND {COMMITTED_SQL} "
               f"THEN size ELSE 0 END) FROM events WHERE kind IN ({calls})")
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " AND pid = ?", (pid,)
        return self._query(sql + " GROUP BY b", args)

    def _window(self, kinds: Sequence[str], pid: Optional[int], lo_ns: Optional[int],
                hi_ns: Optional[int]) -> Tuple[str, List[object]]:
        """The WHERE clause and its arguments for some kinds, one process, a time window."""
        where = [f"kind IN ({', '.join('?' * len(kinds))})"]
        args: List[object] = list(kinds)
        for clause, value in (("pid = ?", pid), ("ts_ns >= ?", lo_ns), ("ts_ns <= ?", hi_ns)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return " AND ".join(where), args

    def bytes_by_stack(
        self, kinds: Optional[Sequence[str]] = None,
    ) -> Dict[Optional[int], Tuple[int, int]]:
        """stack_id (None: no stack) -> (events, sum of |size|) of some kinds (or every event),
        computed in SQLite."""
        where = ""
        args: Tuple[str, ...] = ()
        if kinds is not None:
            where = f" WHERE kind IN ({', '.join('?' * len(kinds))})"
            args = tuple(kinds)
        rows = self._query(
            "SELECT stack_id, COUNT(*), COALESCE(SUM(ABS(size)), 0) FROM events"
            f"{where} GROUP BY stack_id", args)
        return {sid: (n, total) for sid, n, total in rows}

    def last_event_ns(self, pid: Optional[int] = None) -> Optional[int]:
        sql = "SELECT MAX(ts_ns) FROM events" + (" WHERE pid = ?" if pid is not None else "")
        return self._query(sql, () if pid is None else (pid,))[0][0]

    def rss(self, pid: Optional[int] = None) -> List[RecordedRss]:
        """The RSS of every followed address space over time, in time order (empty for a
        recording made without it)."""
        if not self._query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'rss'"):
            return []
        sql = "SELECT ts_ns, pid, space, why, anon, file, shmem, swap FROM rss"
        args: Tuple[int, ...] = ()
        if pid is not None:
            sql, args = sql + " WHERE pid = ?", (pid,)
        return [RecordedRss(ts, p, space, why, Rss(anon, file, shmem, swap))
                for ts, p, space, why, anon, file, shmem, swap
                in self._query(sql + " ORDER BY ts_ns, rowid", args)]

    def event_count(self) -> int:
        return self._query("SELECT COUNT(*) FROM events")[0][0]

    def stacks(self) -> Dict[int, Tuple[Frame, ...]]:
        """Symbolized stacks by id, leaf first; unsymbolized ones as raw hex addresses."""
        result = {}
        for stack_id, ips, frames in self._query("SELECT id, ips, frames FROM stacks"):
            parsed = _frames_from_json(frames)
            if parsed is None:
                parsed = tuple(Frame(f"0x{ip:x}", None, ip) for ip in unpack_ips(ips))
            result[stack_id] = parsed
        return result

    def raw_stacks(self) -> List[Tuple[int, Optional[int], Tuple[int, ...], Optional[int]]]:
        """(id, pid, ips, first-seen ts_ns) of every stack that has addresses, for
        (re)symbolizing."""
        rows = self._query("SELECT id, pid, ips, ts_ns FROM stacks WHERE ips IS NOT NULL")
        return [(sid, pid, unpack_ips(ips), ts) for sid, pid, ips, ts in rows]

    def py_codes(self) -> List[tuple]:
        """(pid, addr, scope, first_ns, name, qualname, filename, firstlineno,
        first_traceable, lines_format, lines) of every Python code object; none in older
        recordings."""
        if not self._has_table("pycode"):
            return []
        return self._query(
            "SELECT pid, addr, scope, first_ns, name, qualname, filename, firstlineno, "
            "first_traceable, lines_format, lines FROM pycode ORDER BY rowid")

    def py_stacks(self) -> Dict[int, Tuple[List[Tuple[int, int, bool, int]], bool]]:
        """stack id -> (Python frames leaf first: (code addr, bytecode offset, first of its
        C eval call, globals addr), cut) of the stacks that have Python frames."""
        if not self._has_table("pystacks"):
            return {}
        return {sid: ([(a, o, bool(e), g) for a, o, e, g in json.loads(frames)], bool(cut))
                for sid, frames, cut in self._query("SELECT stack_id, frames, cut FROM pystacks")}

    def processes(self) -> List[tuple]:
        return self._query(
            "SELECT pid, ppid, comm, start_ns, end_ns, exit_code FROM processes ORDER BY rowid"
        )

    def mappings(self) -> List[tuple]:
        return self._query(
            "SELECT pid, start, end, offset, path, build_id, first_ns, last_ns FROM mappings "
            "ORDER BY pid, first_ns"
        )

    def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
