"""A seeded mutation fuzzer over real recordings: byte corruption and SQL changes of a full
recording, each read by every view (histogram, report, flame, timeline, export, diff,
symbolize).
Every case must end in output or one error line: no traceback, no hang.

Each case is a recording of a few rows, so whatever a view does with it is bounded by what
the recording holds; a case that still runs past WATCHDOG_S is reported as a hang (and
faulthandler ends the test run if even that does not come back)."""

from __future__ import annotations

import faulthandler
import random
import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Callable, Tuple

from tests.helpers.cli import in_process
from tests.helpers.fullrecording import write_full_recording

SEED = 20261129
CASES = 150
WATCHDOG_S = 60
VIEWS = [["histogram"], ["histogram", "--json"], ["report"], ["report", "--json"],
         ["report", "--pid", "42"], ["flame"], ["flame", "--folded"], ["flame", "--retained"],
         ["flame", "--at", "peak"], ["flame", "--flamechart", "--from", "0.1"],
         ["timeline"], ["timeline", "--json"], ["timeline", "--svg"]]
TABLES = {
    "meta": ["key", "value"],
    "processes": ["pid", "ppid", "comm", "start_ns", "end_ns", "exit_code"],
    "stacks": ["key", "pid", "ts_ns", "ips", "frames"],
    "events": ["kind", "size", "ts_ns", "pid", "tid", "addr", "length", "prot", "flags", "fd",
               "ret", "stack_id", "calls", "new_addr", "new_length", "mem_class"],
    "totals": ["kind", "calls", "failed", "bytes", "released"],
    "buckets": ["kind", "value", "count"],
    "classes": ["kind", "class", "bytes"],
    "mappings": ["pid", "start", "end", "offset", "path", "build_id", "first_ns", "last_ns"],
    "samples": ["ts_ns", "pid", "rss", "vms"],
    "rss": ["ts_ns", "pid", "space", "why", "anon", "file", "shmem", "swap"],
    "pycode": ["pid", "addr", "scope", "first_ns", "name", "qualname", "filename", "firstlineno",
               "first_traceable", "lines_format", "lines"],
    "pystacks": ["stack_id", "frames", "cut"],
    "lifetimes": ["pid", "taken_ns", "stack_id", "kind", "bytes", "end_ns", "how"],
    "releases": ["pid", "ts_ns", "bytes"],
    "lifetimes_info": ["version", "events"],
    "held_peaks": ["pid", "ts_ns", "bytes"],
    "event_sums": ["pid", "stack_id", "kind", "class", "committed", "failed", "grew", "events",
                   "calls", "size", "bytes", "first_ns", "last_ns"],
    "event_sums_info": ["version", "events"],
}
VALUES = ["NULL", "0", "-1", "1", "42", "43", "4096", "9223372036854775807",
          "-9223372036854775808", "1e300", "1.5", "-0.0", "'x'", "''", "X'00'", "X'0102'",
          "X'FFFFFFFFFFFFFFFF'", "'brk'", "'mmap'", "'munmap'", "'mremap'", "'madvise'",
          "'mprotect'", "'growth'", "'committed'", "'reserved'", "'[]'", "'{}'", "'null'",
          "'[[\"a\", null, 1]]'", "'[[\"\", \"\", -5]]'",
          "'[[null, null, null]]'", "'\"str\"'", "'NaN'", "'1e999'", "'[1,2,3]'",
          "'{\"brk\": [\"calls\", \"bytes\"]}'", "'{\"mmap\": [[\"x\", 1]]}'",
          "'\u202e\x1b]52;c;AAAA\x07'", "printf('%.5000c', 'z')", "randomblob(24)",
          "CAST(X'FF22' AS TEXT)", "'-1'", "'18446744073709551615'", "zeroblob(16)",
          "'[[1, 4, 1, 2]]'", "'[[1, 4, 1]]'", "'[[1.5, \"x\", null, 2]]'", "'lnotab'",
          "'locations'", "2", "3"]
META_VALUES = ["null", "0", "-1", "1e308", "true", "\"x\"", "[]", "{}", "[1, \"a\"]",
               "{\"brk\": 3}", "{\"brk\": [\"calls\"]}", "[[\"label\", 5]]", "123456789012345",
               "\"\\u0000\"", "[" * 50 + "]" * 50, "-9223372036854775809", "2e-310", "NaN"]
SCHEMA_CHANGES = [
    "CREATE VIEW v AS SELECT 1", "CREATE INDEX i ON events (ts_ns)",
    "CREATE TRIGGER t AFTER UPDATE ON meta BEGIN SELECT 1; END", "DROP TABLE samples",
    "ALTER TABLE processes ADD COLUMN extra INTEGER", "PRAGMA user_version = 3",
    "PRAGMA user_version = 0", "PRAGMA application_id = 7", "DROP INDEX IF EXISTS nothing",
]

Mutation = Callable[[Path], None]


def sql(*statements: str) -> Mutation:
    def apply(path: Path) -> None:
        db = sqlite3.connect(path)
        try:
            for statement in statements:
                db.execute(statement)
            db.commit()
        finally:
            db.close()
    return apply


def flip_bytes(rng: random.Random, count: int, lo: int, hi: int) -> Mutation:
    picks = [(rng.randrange(lo, hi), rng.randrange(256)) for _ in range(count)]

    def apply(path: Path) -> None:
        data = bytearray(path.read_bytes())
        for offset, value in picks:
            if offset < len(data):
                data[offset] = value
        path.write_bytes(bytes(data))
    return apply


def truncate(rng: random.Random, size: int) -> Mutation:
    keep = rng.randrange(size)

    def apply(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:keep])
    return apply


def mutation(rng: random.Random, size: int) -> Tuple[str, Mutation]:
    """One random change of a recording of `size` bytes, described for the failure message."""
    table = rng.choice(sorted(TABLES))
    column = rng.choice(TABLES[table])
    value = rng.choice(VALUES)
    row = rng.randrange(1, 6)
    choice = rng.randrange(13)
    if choice == 0:
        n = rng.randrange(1, 9)
        return f"{n} random bytes anywhere", flip_bytes(rng, n, 0, size)
    if choice == 1:
        return "random bytes in the header and schema page", flip_bytes(rng, 4, 16, 4096)
    if choice == 2:
        return "truncated", truncate(rng, size)
    if choice == 3:
        return "schema change", sql(rng.choice(SCHEMA_CHANGES))
    if choice == 4:
        key = rng.choice(["command", "command_line", "start_ns", "end_ns", "duration_s",
                          "complete", "lost_events", "peak_rss", "unknown_totals", "counts",
                          "other_totals", "titles", "header", "probe_counters", "kinds",
                          "exit_code", "incomplete_reason", "started_at", "unfinished"])
        text = rng.choice(META_VALUES)
        return f"meta {key} = {text[:40]}", sql(
            f"INSERT OR REPLACE INTO meta (key, value) VALUES ('{key}', '{text}')")
    if choice == 5:
        return f"delete {table} row {row}", sql(f"DELETE FROM {table} WHERE rowid = {row}")
    if choice == 6:
        columns = ", ".join(TABLES[table])
        values = ", ".join(rng.choice(VALUES) for _ in TABLES[table])
        return f"insert into {table} ({values[:60]})", sql(
            f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({values})")
    if choice == 10:
        return f"every {table}.{column} = {value[:30]}", sql(
            f"UPDATE OR IGNORE {table} SET {column} = {value}")
    if choice == 11:  # plausible types, implausible numbers
        number = rng.choice(["-1", "0", "1", "-4096", "4096", "2147483647", "-2147483648",
                             "9223372036854775807", "-9223372036854775807",
                             "4611686018427387904", "123456789", "-123456789"])
        target = rng.choice([c for c in TABLES["events"] if c != "kind"])
        expression = rng.choice([number, f"-{target}", f"2 * {target}",
                                 f"{target} + {number}", f"{number} - {target}"])
        return f"events.{target} = {expression}", sql(
            f"UPDATE OR IGNORE events SET {target} = {expression} "
            f"WHERE rowid % 2 = {rng.randrange(2)}")
    if choice == 12:
        return f"{table} rows doubled", sql(f"INSERT OR IGNORE INTO {table} SELECT * FROM {table}")
    several = [f"UPDATE OR IGNORE {t} SET {rng.choice(TABLES[t])} = {rng.choice(VALUES)} "
               f"WHERE rowid = {rng.randrange(1, 6)}" for t in rng.sample(sorted(TABLES), 3)]
    if choice == 7:
        return "three updates: " + "; ".join(several)[:120], sql(*several)
    return f"{table}.{column} = {value[:30]} at row {row}", sql(
        f"UPDATE OR IGNORE {table} SET {column} = {value} WHERE rowid = {row}")


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang


def check_case(number: int, what: str, path: Path, original: Path) -> None:
    views = [[*args, str(path)] for args in VIEWS]
    views.append(["export", "speedscope", "-o", str(path.parent / "export.json"), str(path)])
    views.append(["diff", str(original), str(path)])
    views.append(["symbolize", str(path)])  # last: it writes
    for args in views:
        signal.alarm(WATCHDOG_S)
        try:
            code, _, err = in_process(*args)
        except Hang:
            raise AssertionError(f"case {number} ({what}): {args[0]} hung") from None
        finally:
            signal.alarm(0)
        assert "Traceback" not in err, (number, what, args, err)
        if code:
            assert code in (1, 2) and err.count("\n") <= 2 and (
                err.startswith("heaptrace: error: ")
                or err.startswith("heaptrace: ") and "\nheaptrace: error: " in err), (
                number, what, args, err)


def test_mutated_recordings_never_give_a_traceback_or_hang(tmp_path):
    original = tmp_path / "original.db"
    write_full_recording(str(original))
    size = original.stat().st_size
    rng = random.Random(SEED)
    old = signal.signal(signal.SIGALRM, _alarm)
    faulthandler.dump_traceback_later(WATCHDOG_S * 20, exit=True)
    try:
        for number in range(CASES):
            what, change = mutation(rng, size)
            path = tmp_path / f"case{number}.db"
            shutil.copyfile(original, path)
            try:
                change(path)
            except sqlite3.Error:
                continue  # a change SQLite itself refuses is no recording to read
            check_case(number, what, path, original)
            path.unlink()
            for leftover in tmp_path.glob(f"case{number}.db*"):
                leftover.unlink()
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)
