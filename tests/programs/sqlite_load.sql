-- sqlite_load: a real-world C program (the sqlite3 shell) filling an in-memory database.
-- Run: sqlite3 :memory: '.read tests/programs/sqlite_load.sql'
-- Syscalls besides start-up: brk growth of the heap and mmaps of large blocks as the page
-- cache and the 100,000 rows (with 200-byte blobs) grow; munmaps when the table is dropped
-- and the database closed. Deterministic: no randomness, no file I/O.
PRAGMA cache_size = -65536;
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t SELECT i, 'row ' || i, zeroblob(200) FROM n;
CREATE INDEX t_name ON t (name);
SELECT count(*), sum(length(payload)) FROM t;
DROP TABLE t;
