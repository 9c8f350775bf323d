"""The recording's tables, and the check that a file holds exactly them before anything is read.

A recording is a file anyone may hand to heaptrace. SQLite runs whatever a file's schema says
(a view may be an endless recursive query, a generated column may allocate gigabytes), so a
reader compares `sqlite_master` with the schema below, entry for entry, before its first query.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Dict, FrozenSet, Tuple

from heaptrace.recording.grouped import MAX, MIN, SUM

APPLICATION_ID = 0x48545243  # "HTRC": tells a heaptrace recording from any other SQLite file
# 2: memory classes (events.mem_class, the classes table) and exact RSS (the rss table). Format 1
# is read as it was written: without classes, mmaps are classified by their flags
# (events.mmap_class); without the rss table, a recording has no RSS.
FORMAT_VERSION = 2

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
"""

# Format 1 as earlier heaptrace versions wrote it: before memory classes (first without the
# stacks' ts_ns), then with the classes table, then with events.mem_class, then with the rss
# table (the schema of format 2).
_MEM_CLASS_COLUMN = (
    "    new_addr INTEGER, new_length INTEGER,\n"
    "    mem_class INTEGER -- events.MemClass code the probe gave: what an mmap mapped, an mremap\n"
    "                      -- moved, an mprotect committed or released; 0 or NULL: not known\n")
_CLASSES_TABLE = (
    "CREATE TABLE classes (\n"
    "    kind TEXT NOT NULL, class TEXT NOT NULL, bytes INTEGER NOT NULL,\n"
    "    PRIMARY KEY (kind, class)\n"
    ");\n")
_RSS_TABLE = SCHEMA[SCHEMA.index("CREATE TABLE rss ("):]
_STACK_TS = ("    ts_ns INTEGER, -- first seen: says which image of the pid (before or after an "
             "exec) it ran\n")
_SCHEMA_1_NO_RSS = SCHEMA.replace(_RSS_TABLE, "")
_SCHEMA_1_CLASSES = _SCHEMA_1_NO_RSS.replace(
    _MEM_CLASS_COLUMN, "    new_addr INTEGER, new_length INTEGER\n")
_SCHEMA_1 = _SCHEMA_1_CLASSES.replace(_CLASSES_TABLE, "")
_SCHEMA_1_NO_STACK_TS = _SCHEMA_1.replace(_STACK_TS, "")
assert len({SCHEMA, _SCHEMA_1_NO_RSS, _SCHEMA_1_CLASSES, _SCHEMA_1, _SCHEMA_1_NO_STACK_TS}) == 5


@dataclass(frozen=True)
class Layout:
    """What an accepted schema has: a reader selects what is there."""

    versions: FrozenSet[int]  # the format versions (user_version) it was written with
    stack_ts: bool = True  # stacks.ts_ns
    mem_class: bool = True  # events.mem_class
    classes: bool = True  # the classes table
    rss: bool = True  # the rss table (the kernel's exact counters)


# Tables later than format 2's first files: optional, each present exactly as defined here
# (a recording without them has no Python frames).
PYTHON_SCHEMA = """
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

# Tables derived from the events (analysis/lifetimes.py builds them when run or import finishes
# a file): optional, each entry present exactly as defined here. lifetimes_info says which
# version of the rules built them (another version's are built again), so they need no format.
DERIVED_SCHEMA = """
CREATE TABLE IF NOT EXISTS lifetimes (
    pid INTEGER NOT NULL, taken_ns INTEGER NOT NULL, stack_id INTEGER, kind TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    end_ns INTEGER, -- given back or image ended then; NULL: live when the recording ended
    how INTEGER NOT NULL -- 0 live at the end, 1 given back, 2 its image ended (held at exit)
);
CREATE TABLE IF NOT EXISTS releases ( -- given back, but taken by no traced call
    pid INTEGER NOT NULL, ts_ns INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lifetimes_info (version INTEGER NOT NULL, events INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS held_peaks ( -- the first moment the live images held the most
    pid INTEGER, -- that process's own peak; NULL: of every process together
    ts_ns INTEGER NOT NULL, bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_sums ( -- the events summed per group (Recording.event_sums)
    pid INTEGER NOT NULL, stack_id INTEGER, kind TEXT NOT NULL,
    class INTEGER NOT NULL, -- an mmap's MemClass code, a resident event's RSS class, else the
                            -- probe's class (0: not known)
    committed INTEGER NOT NULL, -- 1: a positive size is committed growth (events.growth)
    failed INTEGER NOT NULL, -- 1: ret < 0
    grew INTEGER NOT NULL, -- 1: size > 0
    events INTEGER NOT NULL, calls INTEGER NOT NULL, size INTEGER NOT NULL,
    bytes INTEGER NOT NULL, -- of |size|
    first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_sums_info (version INTEGER NOT NULL, events INTEGER NOT NULL);
"""
EVENT_SUMS_KEYS = ("pid", "stack_id", "kind", "class", "committed", "failed", "grew")
EVENT_SUMS_VALUES = (("events", SUM), ("calls", SUM), ("size", SUM), ("bytes", SUM),
                     ("first_ns", MIN), ("last_ns", MAX))
DERIVED_INDEXES = """
CREATE INDEX IF NOT EXISTS lifetimes_taken ON lifetimes (pid, taken_ns);
CREATE INDEX IF NOT EXISTS lifetimes_end ON lifetimes (end_ns);
"""

# What a query on a file may raise: SQLite's errors, and a UnicodeDecodeError when SQLite's
# own message quotes bytes of a corrupt file that are not UTF-8.
DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)

MasterRow = Tuple[str, str, str, str]  # type, name, tbl_name, normalized sql
Master = FrozenSet[MasterRow]


def _normalized(sql: object) -> str:
    return " ".join(str(sql).split()) if sql is not None else ""


def _master_of(schema: str) -> Master:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return read_master(db)
    finally:
        db.close()


def read_master(db: sqlite3.Connection) -> Master:
    """Every schema entry (tables, indexes, views, triggers) with its SQL, whitespace folded."""
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return frozenset((str(t), str(n), str(tb), _normalized(s)) for t, n, tb, s in rows)


CURRENT = Layout(frozenset({1, FORMAT_VERSION}))  # format 1 was written with it too, at last

# Every schema a reader accepts.
KNOWN: Dict[Master, Layout] = {
    _master_of(SCHEMA): CURRENT,
    _master_of(_SCHEMA_1_NO_RSS): Layout(frozenset({1}), rss=False),
    _master_of(_SCHEMA_1_CLASSES): Layout(frozenset({1}), mem_class=False, rss=False),
    _master_of(_SCHEMA_1): Layout(frozenset({1}), mem_class=False, classes=False, rss=False),
    _master_of(_SCHEMA_1_NO_STACK_TS): Layout(frozenset({1}), stack_ts=False, mem_class=False,
                                              classes=False, rss=False),
}


DERIVED: Master = _master_of(DERIVED_SCHEMA + DERIVED_INDEXES + PYTHON_SCHEMA)
_DERIVED_NAMES = frozenset(name for _t, name, _tb, _s in DERIVED)


def without_derived(found: Master) -> Master:
    """`found` less the optional tables (derived, Python) and indexes that are exactly as
    defined (an entry of that name defined otherwise stays, and is refused)."""
    return frozenset(e for e in found if not (e[1] in _DERIVED_NAMES and e in DERIVED))


def describe_difference(found: Master) -> str:
    """The first entry that makes `found` differ from the current schema, in words."""
    expected = _master_of(SCHEMA)
    extra = sorted(found - expected)
    if extra:
        kind, name, _table, _sql = extra[0]
        known = {n: k for k, n, _t, _s in expected}
        if known.get(name) == kind:
            return f"{kind} {name!r} is not defined as heaptrace defines it"
        if name in known:
            return f"{name!r} is a {kind}, not a {known[name]}"
        return f"unexpected {kind} {name!r}"
    missing = sorted(expected - found)
    if missing:
        return f"no {missing[0][0]} {missing[0][1]!r}"
    return "unknown schema"
