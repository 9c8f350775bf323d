"""Lifetimes: what became of every committed byte a traced call took, computed once.

One pass of the held replay (analysis/replay.py) over a recording's events, in time order,
cuts each taken range into pieces, each with its end: given back at a time by a later call
(munmap, brk or mremap shrink, madvise, mprotect PROT_NONE, a mapping laid over it), ended
with its process image (exec or exit: it was still held then), or live when the recording
ends. Bytes given back that no traced call took (mapped before an attach) are kept apart, as
releases. Every held view is then an aggregate query over these rows, in bounded memory:
what was held at exit, at a moment, at the peak, per time bucket, per process, per stack.

The rows live in SQLite tables (`lifetimes`, `releases`, `lifetimes_info`), with the
moment each process and the whole run held the most (`held_peaks`, kept during the pass:
the query over the lifetimes sorts every change, tens of seconds on ten million events).
`heaptrace run` and `import` store them in the recording when it is written; a recording
without them (an older heaptrace's) gets them built on first use into a private scratch
database (lifetimes stored without held_peaks: peaks are asked of the lifetimes).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from heaptrace.analysis.eventsums import VERSION as SUMS_VERSION
from heaptrace.analysis.replay import Replay, page_size, steps
from heaptrace.analysis.stacks import Owner, Selection
from heaptrace.recording import Recording, RecordingWriter
from heaptrace.recording.grouped import SUM, grouped
from heaptrace.recording.schema import DERIVED_INDEXES, DERIVED_SCHEMA

VERSION = 1  # of the replay's rules: rows built by another version are built again
LIVE, GIVEN, ENDED = 0, 1, 2  # lifetimes.how
BATCH = 10_000

SCHEMA, INDEXES = DERIVED_SCHEMA, DERIVED_INDEXES  # the tables are the recording's (optional)
TABLES = ("lifetimes", "releases", "lifetimes_info", "held_peaks", "event_sums",
          "event_sums_info")

# A piece is alive at a moment when it was taken by then and has not ended by then.
ALIVE_AFTER = "(how = 0 OR end_ns > ?)"


def pieces(rec: Recording) -> Iterator[Tuple[str, tuple]]:
    """("lifetimes", row) and ("releases", row) for every piece of the whole recording, in
    time order, then ("held_peaks", row) for the run and each process (one replay; its
    memory is what is mapped at a time, not the events).

    The peaks: the first moment at which the live images held the most, after every step
    of a nanosecond, of every process together (pid None) and of each pid (its live image),
    kept as the replay goes (the steps of one nanosecond touch few pids: only theirs are
    looked at). Written inline: this loop runs once per event."""
    replay = Replay(page_size(rec))
    spaces = replay.spaces
    best: Dict[Optional[int], Tuple[int, int]] = {}  # pid (None: all) -> (ts_ns, bytes)
    moment: Optional[int] = None  # the nanosecond of the steps so far
    touched: Set[int] = set()  # the pids they stepped

    def settle() -> None:
        assert moment is not None
        total = replay.total
        if total > 0 and (None not in best or total > best[None][1]):
            best[None] = (moment, total)
        for pid in touched:
            held = spaces[pid].total if pid in spaces else 0
            if held > 0 and (pid not in best or held > best[pid][1]):
                best[pid] = (moment, held)
        touched.clear()

    for ts, step in steps(rec, Selection(kind="all")):
        if ts != moment:
            if moment is not None:
                settle()
            moment = ts
        pid = step if isinstance(step, int) else step.pid
        touched.add(pid)
        replay.step(step)
        for (owner_pid, taken, stack_id, kind), nbytes in replay.released:
            yield "lifetimes", (owner_pid, taken, stack_id, kind, nbytes, ts, GIVEN)
        if replay.unmatched_now > 0:
            yield "releases", (pid, ts, replay.unmatched_now)
        if replay.ended_now is not None:
            for (owner_pid, taken, stack_id, kind), nbytes in replay.ended_now.held():
                yield "lifetimes", (owner_pid, taken, stack_id, kind, nbytes, ts, ENDED)
    if moment is not None:
        settle()
    for space in spaces.values():
        for (pid, taken, stack_id, kind), nbytes in space.held():
            yield "lifetimes", (pid, taken, stack_id, kind, nbytes, None, LIVE)
    for key, (ts, nbytes) in best.items():
        yield "held_peaks", (key, ts, nbytes)


def store(db: sqlite3.Connection, rec: Recording) -> None:
    """Build the lifetimes of `rec` into `db` (its own transaction), replacing any."""
    db.executescript("".join(f"DROP TABLE IF EXISTS {t}; " for t in TABLES) + SCHEMA)
    batches: dict = {"lifetimes": [], "releases": [], "held_peaks": []}
    sql = {"lifetimes": "INSERT INTO lifetimes VALUES (?, ?, ?, ?, ?, ?, ?)",
           "releases": "INSERT INTO releases VALUES (?, ?, ?)",
           "held_peaks": "INSERT INTO held_peaks VALUES (?, ?, ?)"}
    for table, row in pieces(rec):
        batch = batches[table]
        batch.append(row)
        if len(batch) >= BATCH:
            db.executemany(sql[table], batch)
            batch.clear()
    for table, batch in batches.items():
        db.executemany(sql[table], batch)
    db.executescript(INDEXES)
    events = rec.event_count()
    db.execute("INSERT INTO lifetimes_info VALUES (?, ?)", (VERSION, events))
    sums = rec.event_sums()  # one pass over the events: the report reads these instead
    if sums:
        db.executemany(f"INSERT INTO event_sums VALUES ({', '.join('?' * len(sums[0]))})", sums)
    db.execute("INSERT INTO event_sums_info VALUES (?, ?)", (SUMS_VERSION, events))
    db.commit()


def store_in(path: str) -> None:
    """Build and store the lifetimes of the recording at `path` in the file itself (when
    `heaptrace import` has just written it), opened as every update is (recording/files.py)."""
    with RecordingWriter.open_existing(path) as writer:
        writer.store_derived(store)


def current(db: sqlite3.Connection, rec: Recording) -> bool:
    """Whether `db` holds lifetimes of this version for all of `rec`'s events."""
    try:
        row = db.execute("SELECT version, events FROM lifetimes_info").fetchone()
    except sqlite3.Error:
        return False
    return row is not None and tuple(row) == (VERSION, rec.event_count())


class Lifetimes:
    """The lifetimes of one recording and the queries the held views ask of them."""

    def __init__(self, rec: Recording) -> None:
        self._scratch: Optional[str] = None
        self.db = rec.connection()  # checked: the derived tables are as heaptrace defines them
        if current(self.db, rec):
            rec.check_derived()  # and their rows hold what the pass writes
        else:  # an older recording: built here, once per use
            self._scratch = tempfile.mkdtemp(prefix="heaptrace-lifetimes-")
            self.db = sqlite3.connect(os.path.join(self._scratch, "lifetimes.db"))
            try:
                self.db.execute("PRAGMA journal_mode=OFF")
                self.db.execute("PRAGMA synchronous=OFF")
                store(self.db, rec)
            except BaseException:  # a malformed recording: its scratch database goes too
                self.close()
                raise

    def close(self) -> None:
        if self._scratch is not None:  # the recording's own connection is the Recording's
            self.db.close()
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Lifetimes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- held at a moment ------------------------------------------------------------

    def held(self, kinds: Sequence[str], pid: Optional[int], lo: Optional[int],
             hi: Optional[int], moment: Optional[int] = None) -> List[Tuple[Owner, int]]:
        """(who took it, bytes) held of some kinds taken inside [lo, hi]: at `moment` (the
        live images then), else at exit (what every image still held when it ended, or at
        hi, whichever came first)."""
        where, args = self._taken(kinds, pid, lo, moment if moment is not None else hi)
        if moment is not None:
            where.append(ALIVE_AFTER)
            args.append(moment)
        elif hi is not None:
            where.append("NOT (how = 1 AND end_ns <= ?)")
            args.append(hi)
        else:
            where.append("how != 1")
        rows = self.db.execute(
            "SELECT pid, taken_ns, stack_id, kind, SUM(bytes) FROM lifetimes WHERE "
            f"{' AND '.join(where)} GROUP BY pid, taken_ns, stack_id, kind ORDER BY taken_ns",
            args)
        return [((p, t, s, k), n) for p, t, s, k, n in rows]

    def _taken(self, kinds: Sequence[str], pid: Optional[int], lo: Optional[int],
               hi: Optional[int]) -> Tuple[List[str], List[object]]:
        where = [f"kind IN ({', '.join('?' * len(kinds))})"]
        args: List[object] = list(kinds)
        for clause, value in (("pid = ?", pid), ("taken_ns >= ?", lo), ("taken_ns <= ?", hi)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return where, args

    def peak(self, pid: Optional[int], lo: Optional[int],
             hi: Optional[int]) -> Optional[Tuple[int, int]]:
        """(ts_ns, bytes) of the first moment inside [lo, hi] at which the live images (of
        `pid`) held the most, every kind counted; the window's start is such a moment,
        holding what was held before it. None if nothing was held in it."""
        if lo is None and hi is None:
            stored = self._stored_peak(pid)
            if stored is not None:
                return stored or None
        return self.peak_of_changes(pid, lo, hi)

    def peak_of_changes(self, pid: Optional[int], lo: Optional[int],
                        hi: Optional[int]) -> Optional[Tuple[int, int]]:
        """peak(), from the lifetimes' changes (sorted in SQLite, in bounded memory)."""
        changes, args = self._changes("{ts}", pid)
        row = self.db.execute(
            f"WITH d(ts, delta) AS ({changes}),"
            " s(ts, delta) AS (SELECT ts, SUM(delta) FROM d GROUP BY ts),"
            " c(ts, held) AS (SELECT ts, SUM(delta) OVER (ORDER BY ts ROWS UNBOUNDED PRECEDING)"
            " FROM s),"
            " m(ts, held) AS ("
            "  SELECT ts, held FROM c WHERE (? IS NULL OR ts >= ?) AND (? IS NULL OR ts <= ?)"
            "  UNION ALL"
            "  SELECT ?, COALESCE((SELECT held FROM c WHERE ts < ? ORDER BY ts DESC LIMIT 1), 0)"
            "  WHERE ? IS NOT NULL)"
            " SELECT ts, held FROM m WHERE held > 0 ORDER BY held DESC, ts LIMIT 1",
            args + [lo, lo, hi, hi, lo, lo, lo]).fetchone()
        return (row[0], row[1]) if row else None

    def _stored_peak(self, pid: Optional[int]) -> Optional[Union[Tuple[int, int], Tuple[()]]]:
        """The peak the lifetimes pass kept (held_peaks): () when nothing was ever held, None
        when the rows are not there (lifetimes stored by an earlier heaptrace)."""
        try:
            rows = self.db.execute("SELECT ts_ns, bytes FROM held_peaks WHERE pid IS ?",
                                   (pid,)).fetchall()
        except sqlite3.Error:
            return None
        if len(rows) > 1 or not all(type(v) is int for row in rows for v in row):
            return None  # not as the pass writes them: asked of the lifetimes instead
        return (rows[0][0], rows[0][1]) if rows else ()

    def released(self, pid: Optional[int], until: Optional[int] = None) -> int:
        """Bytes given back that no traced call took, up to `until`."""
        sql = "SELECT COALESCE(SUM(bytes), 0) FROM releases WHERE 1"
        args: List[object] = []
        if pid is not None:
            sql, args = sql + " AND pid = ?", args + [pid]
        if until is not None:
            sql, args = sql + " AND ts_ns <= ?", args + [until]
        return int(self.db.execute(sql, args).fetchone()[0])

    # --- over time and per process ---------------------------------------------------------

    def given_by_pid(self, pid: Optional[int]) -> dict:
        """{pid: bytes given back}: held pieces handed back, and releases."""
        only = "WHERE pid = ?" if pid is not None else ""
        args = [pid] if pid is not None else []
        out: dict = {}
        for table, cond in (("lifetimes", "how = 1"), ("releases", "1")):
            where = f"{only} AND {cond}" if only else f"WHERE {cond}"
            for p, n in self.db.execute(
                    f"SELECT pid, SUM(bytes) FROM {table} {where} GROUP BY pid", args):
                out[p] = out.get(p, 0) + n
        return out

    def _changes(self, key: str, pid: Optional[int]) -> Tuple[str, List[object]]:
        """SQL rows (key, delta) of every change of the live images' held bytes: +bytes when a
        piece was taken, -bytes when it ended; `key` is an expression of its time, {ts}."""
        only = "AND pid = ?" if pid is not None else ""
        sql = (f"SELECT {key.format(ts='taken_ns')}, bytes FROM lifetimes WHERE 1 {only}"
               f" UNION ALL SELECT {key.format(ts='end_ns')}, -bytes FROM lifetimes"
               f" WHERE how != 0 {only}")
        return sql, [pid] * 2 if pid is not None else []

    def per_bucket(self, bucket_sql: str, pid: Optional[int]
                   ) -> Tuple[Dict[int, int], Dict[int, int]]:
        """({bucket: change of the live images' held bytes in it}, {bucket: bytes given back
        in it}), from one pass over the lifetimes (grouped by the buckets a piece was taken
        and ended in) and one over the releases; `bucket_sql` maps a column named {ts} to a
        bucket index."""
        only = "WHERE pid = ?" if pid is not None else ""
        args = [pid] if pid is not None else []
        pieces = grouped(
            self.db, f"SELECT {bucket_sql.format(ts='taken_ns')} AS taken_in, CASE WHEN how"
            f" != 0 THEN {bucket_sql.format(ts='end_ns')} END AS ended_in, how, bytes"
            f" FROM lifetimes {only}", args, ["taken_in", "ended_in", "how"], [("bytes", SUM)])
        change: Dict[int, int] = {}
        given: Dict[int, int] = {}
        for taken_in, ended_in, how, nbytes in pieces:
            change[taken_in] = change.get(taken_in, 0) + nbytes
            if how != LIVE:
                change[ended_in] = change.get(ended_in, 0) - nbytes
            if how == GIVEN:
                given[ended_in] = given.get(ended_in, 0) + nbytes
        for b, nbytes in grouped(self.db, f"SELECT {bucket_sql.format(ts='ts_ns')} AS b, bytes"
                                 f" FROM releases {only}", args, ["b"], [("bytes", SUM)]):
            given[b] = given.get(b, 0) + nbytes
        return change, given

    def held_by_stack(self, pid: Optional[int],
                      moment: int) -> Iterable[Tuple[Optional[int], int]]:
        """(stack_id, bytes) the live images held at `moment`, every kind."""
        only = "AND pid = ?" if pid is not None else ""
        args: List[object] = [moment, moment]
        if pid is not None:
            args.append(pid)
        return self.db.execute(
            f"SELECT stack_id, SUM(bytes) FROM lifetimes WHERE taken_ns <= ? AND {ALIVE_AFTER} "
            f"{only} GROUP BY stack_id", args).fetchall()

    def held_at_exit(self, pid: Optional[int]) -> int:
        only = "AND pid = ?" if pid is not None else ""
        return int(self.db.execute(
            f"SELECT COALESCE(SUM(bytes), 0) FROM lifetimes WHERE how != 1 {only}",
            [pid] if pid is not None else []).fetchone()[0])
