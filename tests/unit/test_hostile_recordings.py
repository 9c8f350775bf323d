"""Recordings made to hurt the reader: a schema that is not heaptrace's (views, triggers,
indexes, other column definitions) is refused before the first query; a value of the wrong
type is one error line naming its table and row, in every view."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import List

import pytest

from heaptrace.errors import RecordingError
from heaptrace.recording import Recording
from tests.helpers.cli import in_process
from tests.helpers.fullrecording import write_full_recording

VIEWS = [["histogram"], ["histogram", "--json"], ["report"], ["report", "--json"],
         ["flame"], ["flame", "--folded"], ["flame", "--retained"], ["flame", "--flamechart"],
         ["timeline"], ["timeline", "--json"], ["timeline", "--svg"]]


def tampered(tmp_path: Path, *sql: str) -> Path:
    path = tmp_path / "r.db"
    write_full_recording(str(path))
    db = sqlite3.connect(path)
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()
    return path


def one_line_error(path: Path, args: List[str], says: str) -> None:
    code, out, err = in_process(*args, str(path))
    assert code == 1, (args, out, err)
    assert err.count("\n") == 1 and err.startswith("heaptrace: error: ") and says in err, (
        args, err)


def test_a_recursive_view_in_place_of_a_table_is_refused_before_any_query(tmp_path):
    path = tampered(
        tmp_path, "DROP TABLE totals",
        "CREATE VIEW totals AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
        "SELECT 'brk' AS kind, n AS calls, 0 AS failed, 0 AS bytes, 0 AS released FROM r")
    for args in VIEWS:
        one_line_error(path, args, "its schema is not heaptrace's ('totals' is a view, not a "
                                   "table)")


@pytest.mark.parametrize("statement, says", [
    ("CREATE TRIGGER t AFTER INSERT ON events BEGIN DELETE FROM events; END",
     "unexpected trigger 't'"),
    ("CREATE INDEX slow ON events (length(printf('%.*c', size % 1000, 'x')))",
     "unexpected index 'slow'"),
    ("CREATE VIEW extra AS SELECT 1", "unexpected view 'extra'"),
    ("ALTER TABLE events ADD COLUMN big TEXT AS (zeroblob(1000000000))",
     "table 'events' is not defined as heaptrace defines it"),
    ("DROP TABLE samples", "no table 'samples'"),
])
def test_anything_but_heaptraces_schema_is_refused(tmp_path, statement, says):
    path = tampered(tmp_path, statement)
    for args in (["histogram"], ["report"], ["symbolize"]):
        one_line_error(path, args, says)


@pytest.mark.parametrize("statement, says", [
    ("UPDATE meta SET value = '[\"prog\", ' WHERE key = 'command'",
     "meta row 'command': not valid JSON"),
    ("UPDATE meta SET value = '\"soon\"' WHERE key = 'start_ns'",
     "meta row 'start_ns': expected an integer"),
    ("UPDATE meta SET value = 'NaN' WHERE key = 'duration_s'",
     "meta row 'duration_s': expected a number"),
    ("UPDATE meta SET value = CAST(X'FF22' AS TEXT) WHERE key = 'kernel'",
     "meta row 'kernel': not valid JSON"),
    ("UPDATE meta SET value = '" + "[" * 100000 + "' WHERE key = 'header'",
     "meta row 'header': not valid JSON"),
])
def test_a_malformed_value_of_meta_is_one_line_in_every_view(tmp_path, statement, says):
    path = tampered(tmp_path, statement)
    for args in VIEWS:
        one_line_error(path, args, says)


@pytest.mark.parametrize("statement, says", [
    ("UPDATE events SET size = 'big' WHERE id = 2", "events row 2: size is not an integer"),
    ("UPDATE events SET ts_ns = NULL WHERE id = 4", "events row 4: ts_ns is not an integer"),
    ("UPDATE events SET stack_id = X'00' WHERE id = 5",
     "events row 5: stack_id is not an integer"),
    ("UPDATE events SET mem_class = 'file' WHERE id = 3",
     "events row 3: mem_class is not an integer"),
    ("UPDATE classes SET class = '\x1b]52;c;AAAA\x07' WHERE class = 'file'", "classes row"),
    ("UPDATE stacks SET frames = '[[1, 2, 3]]' WHERE id = 2", "stacks row 2: a frame is not"),
    ("UPDATE stacks SET ips = X'0102' WHERE id = 1",
     "stacks row 1: addresses are not a whole number"),
    ("UPDATE processes SET pid = 'x' WHERE rowid = 2", "processes row 2"),
    ("UPDATE totals SET calls = 'many' WHERE kind = 'brk'", "totals row 1"),
    ("UPDATE buckets SET count = 1.5 WHERE kind = 'mmap'", "buckets row"),
    ("UPDATE rss SET anon = 'lots' WHERE rowid = 1", "rss row 1"),
    # the lifetimes the run stored: read instead of built, so checked like the rest
    ("UPDATE lifetimes SET bytes = 'all' WHERE rowid = 1", "lifetimes row 1: expected integers"),
    ("UPDATE lifetimes SET how = 7 WHERE rowid = 2", "lifetimes row 2"),
    ("UPDATE lifetimes SET kind = 'growth' WHERE rowid = 1", "lifetimes row 1"),
    ("INSERT INTO releases VALUES (42, 'later', 4096)", "releases row"),
    ("UPDATE held_peaks SET bytes = 1.5", "held_peaks row 1"),
    ("UPDATE event_sums SET size = 'all' WHERE rowid = 1", "event_sums row 1: expected integers"),
    ("UPDATE event_sums SET stack_id = X'00' WHERE rowid = 2", "event_sums row 2"),
])
def test_a_malformed_row_is_one_line_naming_its_table_and_row(tmp_path, statement, says):
    path = tampered(tmp_path, statement)
    failed = 0
    for args in VIEWS:
        code, _, err = in_process(*args, str(path))
        assert code in (0, 1) and "Traceback" not in err
        if code == 1:
            assert err.count("\n") == 1 and says in err, (args, err)
            failed += 1
    assert failed  # at least the views that read that table say so


def test_a_malformed_mapping_is_one_line_when_symbolizing(tmp_path):
    path = tampered(tmp_path, "UPDATE mappings SET start = X'00' WHERE rowid = 1")
    one_line_error(path, ["symbolize"], "mappings row 1")


def test_a_value_too_big_to_load_is_refused(tmp_path):
    path = tampered(tmp_path, "UPDATE meta SET value = '\"' || hex(zeroblob(40000000)) || '\"' "
                              "WHERE key = 'kernel'")
    with pytest.raises(RecordingError, match="corrupt recording .*too big"), \
            Recording(str(path)) as rec:
        rec.meta()


def test_unknown_meta_keys_are_ignored(tmp_path):
    path = tampered(tmp_path, "INSERT INTO meta VALUES ('from_the_future', '{\"x\": 1}')",
                    "INSERT INTO meta VALUES ('backend', '\"dtrace\"')")
    with Recording(str(path)) as rec:
        assert rec.meta().command == ["prog", "--big"]


def test_an_event_of_no_known_kind_is_named_when_read(tmp_path):
    """Views select the kinds they know (a newer heaptrace's kinds are left out); reading
    every event reaches it and names it."""
    path = tampered(tmp_path, "UPDATE events SET kind = 'malloc' WHERE id = 3")
    with Recording(str(path)) as rec:
        assert len(list(rec.events(kinds=["brk"]))) == 2
        with pytest.raises(RecordingError, match="events row 3: kind 'malloc' is not one of"):
            list(rec.events())


@pytest.mark.parametrize("statement, says", [
    ("UPDATE pycode SET lines = 'text' WHERE rowid = 1", "pycode row 1"),
    ("UPDATE pycode SET firstlineno = 'ten'", "pycode row 1"),
    ("UPDATE pystacks SET frames = '[[1, 2]]'", "pystacks row 1"),
    ("UPDATE pystacks SET frames = '[[1.5, 4, 1, 2]]'", "pystacks row 1"),
])
def test_a_malformed_python_row_is_one_line_when_symbolizing(tmp_path, statement, says):
    one_line_error(tampered(tmp_path, statement), ["symbolize"], says)
