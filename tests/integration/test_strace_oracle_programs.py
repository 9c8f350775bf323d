"""The strace oracle run live on the test programs: each program's own calls, as its
header comment describes them, are what the oracle reports. (This checks the reference
heaptrace's integration tests compare against; no eBPF here.)"""

from __future__ import annotations

import os
import sys

from tests.helpers.strace_oracle import trace

P = 4096
KiB = 1024
MiB = 1024 * KiB


def sizes(result, kind, pid=None):
    return [c.size for c in result.calls
            if c.kind == kind and not c.failed and (pid is None or c.pid == pid)]


def test_big_malloc(programs):
    result = trace([str(programs["big_malloc"])])
    assert result.exit_code == 0
    big = [s for s in sizes(result, "mmap") if s >= 64 * MiB]
    assert big == [64 * MiB + P]
    assert [s for s in sizes(result, "munmap") if s >= 64 * MiB] == big


def test_brk_loop_grows_by_at_least_the_blocks(programs):
    result = trace([str(programs["brk_loop"])])
    brk = result.totals["brk"]
    assert brk["bytes"] >= 4000 * 1000 and brk["released"] == 0 and brk["failed"] == 0
    assert all(s >= 0 for s in sizes(result, "brk"))


def test_mmap_ops(programs):
    result = trace([str(programs["mmap_ops"])])
    assert sizes(result, "mremap") == [26 * P, -24 * P]
    assert sizes(result, "munmap")[-4:] == [4 * P, 6 * P, 8 * P, 8 * P]


def test_fail_shrink(programs):
    result = trace([str(programs["fail_shrink"])])
    assert {k: t["failed"] for k, t in result.totals.items()} == {
        "brk": 1, "mmap": 1, "munmap": 1, "mremap": 2, "madvise": 0, "mprotect": 0}
    assert result.totals["brk"]["released"] == 96 * KiB


def test_fork_exec_and_spawn_exec_trace_every_process(programs):
    forked = trace([str(programs["fork_exec"])])
    spawned = trace([str(programs["spawn_exec"])])
    assert forked.exit_code == spawned.exit_code == 0
    assert len(forked.pids) == 2 and len(spawned.pids) == 3
    # Every exec_target run takes the same bytes from a fresh break.
    target = trace([str(programs["exec_target"])])
    for result in (forked, spawned):
        for pid in result.pids[1:]:
            assert sizes(result, "brk", pid)[-len(sizes(target, "brk")):] == sizes(target, "brk")


def test_thread_moves_the_shared_break(programs):
    result = trace([str(programs["thread_alloc"])])
    thread = [c.size for c in result.calls if c.kind == "brk" and c.tid != c.pid]
    assert thread == [256 * KiB, -64 * KiB]


def test_threads_race(programs):
    result = trace([str(programs["threads_race"])])
    ours = [s for s in sizes(result, "munmap") if s <= 8 * P]
    assert len(ours) == 800 and sum(ours) == 4 * 900 * P


def test_stacks_deep_sizes_tell_the_contexts_apart(programs):
    result = trace([str(programs["stacks_deep"])])
    assert len(result.pids) == 2
    parent, child = result.pids
    assert {1 * MiB + P, 17 * P, 2 * MiB + P, 18 * P} <= set(sizes(result, "mmap", parent))
    assert sizes(result, "mmap", child) == [3 * MiB + P, 19 * P]


def test_same_program_same_totals(programs):
    runs = [trace([str(programs["templates"])]).totals for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0]["munmap"]["calls"] >= 4  # the three pool chunks and the vector


def test_python_program_is_deterministic_under_a_fixed_seed():
    script = os.path.join(os.path.dirname(__file__), "..", "programs", "py_alloc.py")
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.base_prefix + "/bin/python3", "-I", "-B", script]
    first, second = trace(cmd, env=env), trace(cmd, env=env)
    assert first.exit_code == 0 and first.totals == second.totals
    assert any(s >= 64 * MiB for s in sizes(first, "mmap"))
    assert first.totals["mremap"]["bytes"] > 0
