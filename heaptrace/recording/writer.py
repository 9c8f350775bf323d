"""Writing a recording: a private file beside the output, filled in committed batches, renamed
over the output once there is something to keep (`publish()`, or at the end).

The SQLite connection runs in exclusive locking mode: nobody can read a recording while it is
being written (a reader is told so) and no reader can make a write wait or fail. Its rollback
journal stays open for the whole connection, so a recording killed in the middle of a write
has a hot journal beside it that readers roll back.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import sqlite3
from dataclasses import fields
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from heaptrace.errors import RecordingError
from heaptrace.events import Event, Frame, KindTotals
from heaptrace.recording.files import NEVER, OutputError, PrivateFile, held_by_another_fd
from heaptrace.recording.lru import Lru
from heaptrace.recording.meta import FIELD_NAMES, RunMeta
from heaptrace.recording.rows import (
    PyFrames,
    RecordedRss,
    frames_json,
    pack_ips,
    py_json,
    signed64,
    stack_key,
)
from heaptrace.recording.schema import (
    APPLICATION_ID,
    CURRENT,
    DB_ERRORS,
    FORMAT_VERSION,
    PYTHON_SCHEMA,
    SCHEMA,
)

EVENT_COLUMNS = tuple(f.name for f in fields(Event))
_event_row = operator.attrgetter(*EVENT_COLUMNS)  # dataclasses.astuple deep-copies: far slower
STACK_CACHE = 65536  # stack ids kept in memory by key; the others are looked up in the file
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)


class RecordingWriteError(RecordingError):
    """Writing the recording failed (disk full, I/O error...): the run cannot go on."""


def connect_verified(path: str, ident: tuple, shown: str, ours: int = -1) -> sqlite3.Connection:
    """Open `path` with SQLite and make sure SQLite opened the file `ident` (dev, inode) that
    heaptrace holds (on descriptor `ours`), not whatever another process may have put at
    that name meanwhile."""
    try:
        # mode=rw: never created by SQLite (a link put in its place cannot make root create
        # a file anywhere); an existing file reached through one is refused below, unwritten
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=rw", uri=True,
                             timeout=1.0, isolation_level="DEFERRED")
    except DB_ERRORS as exc:
        raise RecordingWriteError(f"cannot open {shown}: {exc}") from None
    if not held_by_another_fd(ident, ours):
        db.close()
        raise OutputError(f"{shown} was replaced by another process while heaptrace opened it")
    return db


class RecordingWriter:
    """Creates a recording and fills it; call `commit()` after each batch.

    `overwrite` says what an existing file at `path` may be for the new recording to replace
    it (files.NEVER, RECORDING or ANY_FILE; never a link, a directory or a device). The new
    recording replaces it at `publish()` or at `close()`; `discard()` leaves it untouched.
    """

    def __init__(self, path: str, overwrite: str = NEVER, meta: Optional[RunMeta] = None) -> None:
        self.path = path
        self.meta = meta if meta is not None else RunMeta()
        self.published = False
        self._layout = CURRENT  # what the file's schema has (symbolize updates older formats)
        self.events_written = 0  # committed
        self._events_pending = 0  # added since the last commit
        # (pid, stack key) -> id, for the stacks most recently stored (the rest: in the file)
        self._stack_ids: Lru[Tuple[Optional[int], bytes], int] = Lru(STACK_CACHE)
        self._file: Optional[PrivateFile] = PrivateFile(
            path, overwrite, "a heaptrace recording", APPLICATION_ID)
        try:
            self._db = self._connect(self._file.tmp_path, self._file.tmp_name)
            self._db.executescript(SCHEMA + PYTHON_SCHEMA)
            self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            self._write_meta(self.meta.rows())
            self.commit()
        except BaseException:
            self._abandon()
            raise

    def _connect(self, path: str, name: str) -> sqlite3.Connection:
        """SQLite on the file heaptrace created, with its journal opened at once (exclusive
        locking keeps it open until the end) and checked to sit beside the recording."""
        file = self._file
        assert file is not None
        db = connect_verified(path, file.ident, self.path, file.fd)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.commit()
        except DB_ERRORS as exc:
            db.close()
            raise RecordingWriteError(f"cannot write {self.path}: {exc}") from None
        journal = file.ident_of(f"{name}-journal")
        if journal is None or not held_by_another_fd(journal):
            db.close()
            raise OutputError(f"the journal of {self.path} is not where heaptrace created it "
                              "(its directory was changed by another process)")
        return db

    @classmethod
    def open_existing(cls, path: str) -> RecordingWriter:
        """Reopen a recording to update it in place (`heaptrace symbolize`)."""
        from heaptrace.recording.reader import open_for_update

        self = cls.__new__(cls)
        self.path = path
        self.published = True
        self.events_written = self._events_pending = 0
        self._file = None
        self._db, self.meta, self._layout = open_for_update(path)
        self._stack_ids = Lru(STACK_CACHE)  # the rest is found in the file (add_stack)
        return self

    # --- the file ------------------------------------------------------------------------

    def publish(self) -> None:
        """Rename the recording over the output now (checked again: a link, a directory or
        a recording another run is writing there is refused); from here on, every committed
        batch survives a crash or a kill at the output's name."""
        if self.published:
            return
        file = self._file
        assert file is not None
        self.commit()
        self._db.close()
        file.replace_output(before=lambda: file.unlink_beside(f"{file.name}-journal"))
        self.published = True
        try:
            self._db = self._connect(self.path, file.name)
        except BaseException:
            self._db = sqlite3.connect(":memory:")  # closed by close(); the file is kept
            raise

    def commit(self) -> None:
        try:
            self._db.commit()
        except DB_ERRORS as exc:
            self._failed(exc)
        self.events_written += self._events_pending
        self._events_pending = 0

    def close(self) -> None:
        """Commit, and put the recording at its output name if it is not there yet (if the
        last commit fails, an unpublished recording is discarded)."""
        try:
            self.commit()
        except BaseException:
            if not self.published:
                self._abandon()
            else:
                self._db.close()
                if self._file is not None:
                    self._file.close()
            raise
        self._db.close()
        if self._file is not None:
            if not self.published:
                try:
                    self._file.replace_output()
                except BaseException:
                    self._file.discard()
                    raise
                self.published = True
            self._file.close()

    def discard(self) -> None:
        """Forget the recording: the private file is removed and the output left as it was
        (once published, the recording stays: what was committed is kept)."""
        if self.published:
            with contextlib.suppress(RecordingError):
                self.close()
            return
        self._abandon()

    def _abandon(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(*DB_ERRORS):
                db.rollback()
            db.close()
        if self._file is not None:
            self._file.discard()

    def rollback(self) -> None:
        """Forget what was not committed (after a failure)."""
        with contextlib.suppress(*DB_ERRORS):
            self._db.rollback()
        self._events_pending = 0

    def mark_failed(self, reason: str, totals: Optional[Dict[str, KindTotals]] = None,
                    **meta: object) -> bool:
        """After a failure: roll back what was not committed, and store `reason`, the exact
        `totals` and `meta` fields with complete=False (the totals are left out if they do
        not fit on a full disk). Returns False if not even that could be written."""
        self.rollback()
        if totals is not None:
            try:
                self.set_totals(totals)
                self._db.commit()
            except (*DB_ERRORS, RecordingError):
                with contextlib.suppress(*DB_ERRORS):
                    self._db.rollback()
        try:
            self.set_meta(complete=False, incomplete_reason=reason, **meta)
            self._db.commit()
        except (*DB_ERRORS, RecordingError):
            with contextlib.suppress(*DB_ERRORS):
                self._db.rollback()
            return False
        return True

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not self.published:
            self.discard()
        else:
            self.close()

    def _failed(self, exc: Exception) -> None:
        raise RecordingWriteError(f"writing {self.path} failed: {exc}") from None

    def _run(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except DB_ERRORS as exc:
            self._failed(exc)
            raise  # not reached

    # --- contents ------------------------------------------------------------------------

    def set_meta(self, **values: object) -> None:
        """Change some fields of the run's metadata (RunMeta field names) and store them."""
        unknown = set(values) - FIELD_NAMES
        if unknown:
            raise TypeError(f"not RunMeta fields: {', '.join(sorted(unknown))}")
        for name, value in values.items():
            setattr(self.meta, name, value)
        self._write_meta(self.meta.rows(values))

    def write_meta(self, meta: RunMeta) -> None:
        """Store a whole RunMeta (every field)."""
        self.meta = meta
        self._write_meta(meta.rows())

    def _write_meta(self, rows: Iterable[tuple]) -> None:
        try:
            self._db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)
        except DB_ERRORS as exc:
            self._failed(exc)

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
        key = stack_key(pid, ips, frames, image, py)
        stack_id = self._stack_ids.get((pid, key))
        if stack_id is None:  # stored already, its id evicted from the cache since?
            row = self._run("SELECT id FROM stacks WHERE key = ?", (key,)).fetchone()
            stack_id = row[0] if row else None
            if stack_id is not None:
                self._stack_ids.put((pid, key), stack_id)
        if stack_id is None:
            cur = self._run(
                "INSERT INTO stacks (key, pid, ts_ns, ips, frames) VALUES (?, ?, ?, ?, ?)",
                (key, pid, ts_ns, pack_ips(ips) if ips else None, frames_json(frames)),
            )
            assert cur.lastrowid is not None
            stack_id = cur.lastrowid
            self._stack_ids.put((pid, key), stack_id)
            if py:
                self._run("INSERT INTO pystacks (stack_id, frames, cut) VALUES (?, ?, ?)",
                          (stack_id, json.dumps(py_json(py)), int(py_cut)))
        return stack_id

    def cached_stacks(self) -> int:
        """How many stack ids the writer keeps in memory."""
        return len(self._stack_ids)

    def forget_stacks(self, pids: Set[int]) -> None:
        """The cached ids of these processes' stacks go (they ended: a recorder following a
        build keeps what its live processes use); a stack asked for again is found in the
        file."""
        self._stack_ids.drop(lambda key: key[0] in pids)

    def add_py_code(
        self, pid: int, addr: int, scope: int, first_ns: int, name: str, qualname: str,
        filename: str, firstlineno: int, first_traceable: int, lines_format: str, lines: bytes,
    ) -> None:
        """A Python code object of `pid` at `addr` run with the globals at `scope`, first
        seen at `first_ns`."""
        self._run(
            "INSERT INTO pycode (pid, addr, scope, first_ns, name, qualname, filename, "
            "firstlineno, first_traceable, lines_format, lines) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, addr, scope, first_ns, name, qualname,
             filename, firstlineno, first_traceable, lines_format, lines))

    def set_stack_frames(self, stack_id: int, frames: Sequence[Frame]) -> None:
        self._run("UPDATE stacks SET frames = ? WHERE id = ?", (frames_json(frames), stack_id))

    def add_events(self, events: Iterable[Event]) -> None:
        rows = list(map(_event_row, events))
        try:
            self._db.executemany(_INSERT_EVENT, rows)
        except DB_ERRORS as exc:
            self._failed(exc)
        self._events_pending += len(rows)

    def add_process(
        self, pid: int, ppid: Optional[int], comm: Optional[str], start_ns: Optional[int]
    ) -> None:
        self._run("INSERT INTO processes (pid, ppid, comm, start_ns) VALUES (?, ?, ?, ?)",
                  (pid, ppid, comm, start_ns))

    def end_process(self, pid: int, end_ns: int, exit_code: Optional[int] = None) -> None:
        self._run(
            "UPDATE processes SET end_ns = ?, exit_code = COALESCE(?, exit_code) "
            "WHERE rowid = (SELECT MAX(rowid) FROM processes WHERE pid = ?)",
            (end_ns, exit_code, pid),
        )

    def rename_process(self, pid: int, comm: str) -> None:
        self._run(
            "UPDATE processes SET comm = ? "
            "WHERE rowid = (SELECT MAX(rowid) FROM processes WHERE pid = ?)",
            (comm, pid),
        )

    def add_mapping(
        self, pid: int, start: int, end: int, offset: int, path: str,
        build_id: Optional[str], first_ns: int, last_ns: Optional[int] = None,
    ) -> int:
        """An executable mapping of `pid` from `first_ns` until `last_ns` (None: until exit);
        returns its row (rows are numbered in the order they were added)."""
        cur = self._run(
            "INSERT INTO mappings (pid, start, end, offset, path, build_id, first_ns, last_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, signed64(start), signed64(end), offset, path, build_id, first_ns, last_ns),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete_mappings(self, pid: int, from_row: int = 0) -> None:
        """The mappings of `pid` stored from row `from_row` on (those of an earlier process
        with that pid, stored before, stay)."""
        self._run("DELETE FROM mappings WHERE pid = ? AND rowid >= ?", (pid, from_row))

    def add_rss(self, rows: Iterable[RecordedRss]) -> None:
        try:
            self._db.executemany(
                "INSERT INTO rss (ts_ns, pid, space, why, anon, file, shmem, swap) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.ts_ns, r.pid, r.space, r.why, r.rss.anon, r.rss.file, r.rss.shmem,
                  r.rss.swap) for r in rows])
        except DB_ERRORS as exc:
            self._failed(exc)

    def set_totals(self, totals: Dict[str, KindTotals]) -> None:
        """Replace the exact per-kind counters and their power-of-two buckets."""
        self._run("DELETE FROM totals")
        self._run("DELETE FROM buckets")
        self._run("DELETE FROM classes")
        for kind, t in totals.items():
            self._run(
                "INSERT INTO totals (kind, calls, failed, bytes, released) VALUES (?, ?, ?, ?, ?)",
                (kind, t.calls, t.failed, t.bytes, t.released),
            )
            try:
                self._db.executemany(
                    "INSERT INTO buckets (kind, value, count) VALUES (?, ?, ?)",
                    [(kind, v, c) for v, c in sorted(t.buckets.items())],
                )
                self._db.executemany(
                    "INSERT INTO classes (kind, class, bytes) VALUES (?, ?, ?)",
                    [(kind, c, n) for c, n in t.classes.items()],
                )
            except DB_ERRORS as exc:
                self._failed(exc)

    def store_derived(self, store: Callable[[sqlite3.Connection, Any], None]) -> None:
        """Have `store(connection, reader)` write tables derived from the events (lifetimes:
        analysis/lifetimes.py) through this writer's own connection, then commit."""
        try:
            store(self._db, self.reader())
            self._db.commit()
        except DB_ERRORS as exc:
            self._failed(exc)

    def reader(self):  # noqa: ANN201 - a Recording over this connection (import cycle)
        """Read what was written so far through this connection (no reopening)."""
        from heaptrace.recording.reader import Recording

        return Recording.over(self._db, self.path, self._layout)
