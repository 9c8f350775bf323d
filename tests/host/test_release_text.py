"""Dropping the code pages of a library this process uses (the host's libsqlite3, as bcc's
libLLVM after the probe's compile) leaves it working: its pages come back from the file."""

from __future__ import annotations

import sqlite3

from heaptrace.backends.release import drop_text, text_mappings


def _sqlite_text_kb() -> int:
    with open("/proc/self/smaps") as f:
        return sum(m.rss_kb for m in text_mappings(f.read(), ("libsqlite3",)))


def test_dropped_code_pages_leave_the_library_working():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    before = _sqlite_text_kb()
    if before == 0:  # Python's sqlite3 linked statically: nothing to drop here
        return
    assert drop_text(("libsqlite3",)) == before
    assert _sqlite_text_kb() < before
    assert db.execute("SELECT SUM(x) FROM t").fetchone() == (499500,)  # read back from the file
    assert _sqlite_text_kb() > 0
