"""heaptrace's calls, failures, bytes and released bytes per kind, the bytes of each class
(committed, reserved, file, shared) of mmap and mremap, and the bytes still held at exit
(committed and not given back by munmap, brk, madvise or mprotect) equal exactly what strace
logs for the same program (both under `setarch -R`, so the break starts in the same place)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from heaptrace.analysis.quantize import quantize
from tests.helpers.cli import argv, heaptrace, histogram_json
from tests.helpers.strace_oracle import CLASSED, CLASSES, KINDS, trace

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
PY_ENV = {**os.environ, "PYTHONHASHSEED": "0"}
FIELDS = ("calls", "failed", "bytes", "released")


def heaptrace_setarch(db: Path, cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["setarch", "-R", *argv("run", "-o", str(db), "--", *cmd)],
                          capture_output=True, text=True, **kwargs)


def compare(tmp_path: Path, cmd, **kwargs) -> dict:
    """Run cmd under both tracers; assert equal totals and buckets; return heaptrace's JSON."""
    oracle = trace(cmd, **kwargs)
    proc = heaptrace_setarch(tmp_path / "r.db", cmd, **kwargs)
    assert proc.returncode == oracle.exit_code, proc.stderr
    doc = histogram_json(tmp_path / "r.db")
    for kind in KINDS:
        ours = {f: doc["events"][kind][f] for f in FIELDS}
        assert ours == {f: oracle.totals[kind][f] for f in FIELDS}, kind
        if kind in CLASSED:
            assert {c: doc["events"][kind][c] for c in CLASSES} == oracle.totals[kind]["classes"]
        buckets = {b["value"]: b["count"] for b in doc["events"][kind]["buckets"] if b["count"]}
        growth = [s for s in oracle.sizes(kind) if s > 0]
        assert buckets == quantize(growth), kind
    assert doc["recording"]["lost_events"] == 0
    counters = doc["recording"]["probe_counters"]
    assert counters["ranges_full"] == counters["ranges_busy"] == 0
    report = json.loads(heaptrace("report", str(tmp_path / "r.db"), "--json").stdout)
    assert report["held"]["total"] == oracle.held  # committed, not given back, page by page
    return doc


@pytest.mark.parametrize("name", ["brk_loop", "big_malloc", "mmap_ops", "fail_shrink",
                                  "madvise_ops", "thread_alloc", "threads_race", "fork_exec",
                                  "spawn_exec", "stacks_deep", "templates", "classes_ops"])
def test_compiled_program_matches_strace(tmp_path, programs, name):
    doc = compare(tmp_path, [str(programs[name])], cwd=str(tmp_path))
    assert doc["events"]["mmap"]["calls"] > 0


def test_python_program_matches_strace(tmp_path):
    cmd = ["/usr/bin/python3", "-I", "-B", str(PROGRAMS / "py_alloc.py")]
    doc = compare(tmp_path, cmd, cwd=str(tmp_path), env=PY_ENV)
    assert doc["events"]["mremap"]["bytes"] > 0
    assert doc["events"]["munmap"]["bytes"] >= 64 << 20


def test_sqlite3_matches_strace(tmp_path):
    cmd = ["sqlite3", ":memory:", f".read {PROGRAMS / 'sqlite_load.sql'}"]
    doc = compare(tmp_path, cmd, cwd=str(tmp_path))
    assert doc["events"]["brk"]["bytes"] + doc["events"]["mmap"]["bytes"] > 20 << 20


def test_shell_pipeline_children_are_followed(tmp_path, programs):
    script = f"{programs['big_malloc']} && {programs['brk_loop']} | cat"
    doc = compare(tmp_path, ["sh", "-c", script], cwd=str(tmp_path))
    assert doc["events"]["mmap"]["bytes"] >= 64 << 20


def test_many_short_lived_processes_match_strace(tmp_path, programs):
    """150 processes, ten at a time: fork, exec, exit and pid turnover under load."""
    script = (f"for i in $(seq 1 150); do {programs['exec_target']} & "
              "if [ $((i % 10)) = 0 ]; then wait; fi; done; wait")
    doc = compare(tmp_path, ["sh", "-c", script], cwd=str(tmp_path))
    assert doc["events"]["brk"]["calls"] >= 150 * 3
    assert doc["recording"]["bytes_with_whole_stack_share"] >= 0.99


def test_fork_heavy_run_matches_strace_and_keeps_nothing_of_exited_processes(tmp_path,
                                                                              programs):
    """300 children one after another (fork, brk, mmap, munmap, exec of exec_target, exit):
    every call as strace -f saw it, every child's stacks whole and named, and once the
    events ended the recorder held nothing for any of them (meta recorder_kept)."""
    children = 300
    doc = compare(tmp_path, [str(programs["fork_many"]), str(children), "exec"],
                  cwd=str(tmp_path))
    assert doc["recording"]["bytes_with_whole_stack_share"] >= 0.99
    kept = doc["recording"]["recorder_kept"]
    assert {"stack_parts", "stack_ids", "processes", "mapped_pids"} <= kept.keys()
    assert kept == dict.fromkeys(kept, 0)
    folded = heaptrace("flame", str(tmp_path / "r.db"), "--folded").stdout.splitlines()
    grown = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in folded}
    child = "fork_many;_start;__libc_start_main;__libc_start_call_main;main;child;"
    assert grown[child + "map_anon;mmap"] == children * 256 * 1024
    assert grown[child + "sbrk;brk"] == children * 64 * 1024
    target = "exec_target;_start;__libc_start_main;__libc_start_call_main;main;malloc;"
    assert sum(v for k, v in grown.items() if k.startswith(target)) > children * 512 * 1024


def test_madvise_counts_pages_given_back(tmp_path, programs):
    doc = compare(tmp_path, [str(programs["madvise_ops"])], cwd=str(tmp_path))
    assert {f: doc["events"]["madvise"][f] for f in FIELDS} == {
        "calls": 5, "failed": 2, "bytes": (256 + 128) * 4096, "released": 0}
    proc = heaptrace("flame", str(tmp_path / "r.db"), "--event", "madvise", "--folded")
    assert proc.stdout.splitlines() == [
        f"madvise_ops;_start;__libc_start_main;__libc_start_call_main;main;madvise {384 * 4096}"]


def test_arena_threads_grow_by_what_they_commit(tmp_path, programs):
    """Four threads fill glibc arenas: growth is what mprotect committed in the arenas'
    PROT_NONE reservations (about 420 MB), not the reservations (about 750 MB)."""
    doc = compare(tmp_path, [str(programs["arena_threads"])], cwd=str(tmp_path))
    events = doc["events"]
    assert events["mprotect"]["bytes"] > 4 * 200_000 * 500
    assert events["mmap"]["reserved"] > events["mprotect"]["bytes"]
    proc = heaptrace("report", str(tmp_path / "r.db"), "--json")
    report = json.loads(proc.stdout)
    committed = (events["brk"]["bytes"] + events["mmap"]["committed"]
                 + events["mremap"]["committed"] + events["mprotect"]["bytes"])
    assert report["growth_total"] == committed
    # the flame graph draws the same growth: the threads' commits, not the reservations
    folded = heaptrace("flame", str(tmp_path / "r.db"), "--folded").stdout.splitlines()
    assert sum(int(line.rsplit(" ", 1)[1]) for line in folded) == committed
    on_mprotect = sum(int(line.rsplit(" ", 1)[1]) for line in folded
                      if line.rsplit(" ", 1)[0].endswith("mprotect"))
    assert on_mprotect == events["mprotect"]["bytes"]


def test_every_class_and_change_of_class_matches_strace(tmp_path, programs):
    """classes_ops: reservation, commits, MAP_FIXED, back to PROT_NONE, file, shared,
    madvise, mremap growth, a thread stack, a forked child committing in the inherited
    reservation, and an exec."""
    doc = compare(tmp_path, [str(programs["classes_ops"])], cwd=str(tmp_path))
    events = doc["events"]
    assert events["mprotect"]["released"] == 256 * 1024
    assert events["mremap"]["committed"] == events["mremap"]["shared"] == 1 << 20
    assert events["mmap"]["shared"] == 1 << 20
