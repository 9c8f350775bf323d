"""The strace oracle's parser and accounting, on hand-written lines and on real logs
captured from tests/programs (tests/data/strace/, see the README there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.strace_oracle import (
    CLASSES,
    KINDS,
    parse,
    parse_log,
    parse_return,
    split_args,
    to_json,
    totals,
)

LOGS = Path(__file__).resolve().parent.parent / "data" / "strace"
P = 4096
KiB = 1024
MiB = 1024 * KiB


def log(name: str) -> str:
    return (LOGS / f"{name}.log").read_text()


def calls_of(result, kind, pid=None):
    return [c for c in result.calls if c.kind == kind and (pid is None or c.pid == pid)]


# ---------------------------------------------------------------- pieces


def test_split_args_keeps_nested_commas_and_strings_together():
    text = 'NULL, {flags=CLONE_VM|CLONE_VFORK, stack=0x1}, ["a, b", "c"], "x\\", y", 88'
    assert split_args(text) == (
        "NULL", "{flags=CLONE_VM|CLONE_VFORK, stack=0x1}", '["a, b", "c"]', '"x\\", y"', "88",
    )
    assert split_args("") == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x555555559000", (0x555555559000, None)),
        ("0", (0, None)),
        ("9438", (9438, None)),
        ("-1 ENOMEM (Cannot allocate memory)", (-1, "ENOMEM")),
        ("?", (None, None)),
        ("? <unavailable>", (None, None)),
    ],
)
def test_parse_return(text, expected):
    assert parse_return(text) == expected


def test_both_pid_prefixes_and_noise_lines():
    text = "\n".join([
        "[pid  7] brk(NULL) = 0x1000",
        "7     brk(0x3000)  = 0x3000",
        "7     --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---",
        "7     +++ exited with 0 +++",
        "brk(0x4000) = 0x4000",
    ])
    syscalls = parse_log(text)
    assert [(c.tid, c.args, c.ret) for c in syscalls] == [
        (7, ("NULL",), 0x1000), (7, ("0x3000",), 0x3000), (0, ("0x4000",), 0x4000),
    ]


# ---------------------------------------------------------------- semantics on made-up logs


def test_forked_child_inherits_the_break_at_the_clone_and_then_moves_its_own():
    result = parse("\n".join([
        "100 brk(NULL) = 0x10000",
        "100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>",
        "101 brk(0x13000) = 0x13000",
        "100 <... clone resumed>, child_tidptr=0x7f0) = 101",
        "100 brk(0x12000) = 0x12000",
    ]))
    assert [(c.pid, c.size) for c in calls_of(result, "brk")] == [
        (100, 0), (101, 0x3000), (100, 0x2000),
    ]
    assert result.totals["brk"] == {"calls": 3, "failed": 0, "bytes": 0x5000, "released": 0}
    assert result.pids == [100, 101]


def test_threads_share_the_break_and_belong_to_their_process():
    result = parse("\n".join([
        "200 brk(NULL) = 0x10000",
        "200 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, "
        "exit_signal=0, stack=0x7f} => {parent_tid=[201]}, 88) = 201",
        "201 brk(0x14000) = 0x14000",
        "200 brk(0x15000) = 0x15000",
    ]))
    assert [(c.pid, c.tid, c.size) for c in calls_of(result, "brk")] == [
        (200, 200, 0), (200, 201, 0x4000), (200, 200, 0x1000),
    ]
    assert result.pids == [200]


def test_vfork_child_shares_the_address_space_until_exec_starts_afresh():
    result = parse("\n".join([
        "300 brk(NULL) = 0x10000",
        "300 vfork( <unfinished ...>",
        "301 brk(0x11000) = 0x11000",
        "301 execve(\"/bin/true\", [\"true\"], 0x7ff /* 3 vars */) = 0",
        "301 brk(NULL) = 0x50000",
        "300 <... vfork resumed>) = 301",
        "300 brk(0x12000) = 0x12000",
    ]))
    assert [(c.pid, c.size) for c in calls_of(result, "brk")] == [
        (300, 0), (301, 0x1000), (301, 0), (300, 0x1000),
    ]


def test_failed_exec_keeps_the_address_space():
    result = parse("\n".join([
        "400 brk(NULL) = 0x10000",
        "400 execve(\"/nonexistent\", [\"x\"], 0x7ff /* 3 vars */) = -1 ENOENT (No such file)",
        "400 brk(0x11000) = 0x11000",
    ]))
    assert [c.size for c in calls_of(result, "brk")] == [0, 0x1000]


def test_classes_and_mprotect_follow_the_pages():
    """A reservation committed twice over the same pages counts them once; PROT_NONE again
    releases them; a forked child inherits the pages, threads share them, exec drops them."""
    result = parse("\n".join([
        "500 mmap(NULL, 65536, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0) "
        "= 0x7f0000",
        "500 mprotect(0x7f0000, 8192, PROT_READ|PROT_WRITE) = 0",
        "500 mprotect(0x7f0000, 16384, PROT_READ|PROT_WRITE) = 0",
        "500 mprotect(0x7f1000, 4096, PROT_NONE) = 0",
        "500 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 3, 0) = 0x900000",
        "500 mprotect(0x900000, 4096, PROT_NONE) = 0",
        "500 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0) = 0xa00000",
        "500 mremap(0xa00000, 8192, 16384, MREMAP_MAYMOVE) = 0xb00000",
        "500 clone(child_stack=NULL, flags=SIGCHLD) = 501",
        "501 mprotect(0x7f8000, 4096, PROT_READ) = 0",
        "501 execve(\"/bin/true\", [\"true\"], 0x7ffc /* 1 var */) = 0",
        "501 mprotect(0x7f9000, 4096, PROT_READ) = 0",
    ]))
    assert result.totals["mprotect"] == {"calls": 6, "failed": 0, "bytes": 5 * P,
                                         "released": P}
    assert result.totals["mmap"]["classes"] == {"committed": 0, "reserved": 65536,
                                                "file": 4096, "shared": 8192}
    assert result.totals["mremap"]["classes"] == {**dict.fromkeys(CLASSES, 0), "shared": 8192}


def test_failures_shrinks_and_refused_brk():
    result = parse("\n".join([
        "500 brk(NULL) = 0x10000",
        "500 brk(0x20000) = 0x20000",
        "500 brk(0x18000) = 0x18000",
        "500 brk(0x900000000000) = 0x18000",
        "500 mmap(NULL, 1125899906842624, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) "
        "= -1 ENOMEM (Cannot allocate memory)",
        "500 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f000",
        "500 munmap(0x7f001, 4096) = -1 EINVAL (Invalid argument)",
        "500 mremap(0x7f000, 8192, 4096, 0) = 0x7f000",
        "500 mremap(0x7f000, 4096, 65536, 0) = -1 ENOMEM (Cannot allocate memory)",
        "500 munmap(0x7f000, 4096) = 0",
    ]))
    none = dict.fromkeys(("committed", "reserved", "file", "shared"), 0)
    assert result.totals == {
        "brk": {"calls": 4, "failed": 1, "bytes": 0x10000, "released": 0x8000},
        "mmap": {"calls": 2, "failed": 1, "bytes": 8192, "released": 0,
                 "classes": {**none, "committed": 8192}},
        "munmap": {"calls": 2, "failed": 1, "bytes": 4096, "released": 0},
        "mremap": {"calls": 2, "failed": 1, "bytes": 0, "released": 4096, "classes": none},
        "madvise": {"calls": 0, "failed": 0, "bytes": 0, "released": 0},
        "mprotect": {"calls": 0, "failed": 0, "bytes": 0, "released": 0},
    }


def test_madvise_counts_only_advice_that_gives_pages_back():
    result = parse("\n".join([
        "500 madvise(0x7f000, 1048576, MADV_DONTNEED) = 0",
        "500 madvise(0x7f000, 524288, MADV_FREE) = 0",
        "500 madvise(0x7f000, 262144, MADV_WILLNEED) = 0",
        "500 madvise(0x7f001, 4096, MADV_DONTNEED) = -1 EINVAL (Invalid argument)",
    ]))
    assert result.totals["madvise"] == {
        "calls": 4, "failed": 1, "bytes": 1048576 + 524288, "released": 0}


def test_a_call_cut_short_counts_as_a_call_of_unknown_outcome():
    result = parse("\n".join([
        "600 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>) = ?",
        "601 munmap(0x7f000, 4096 <unfinished ...>",
    ]))
    assert result.totals["mmap"] == {"calls": 1, "failed": 0, "bytes": 0, "released": 0,
                                     "classes": dict.fromkeys(CLASSES, 0)}
    assert result.totals["munmap"] == {"calls": 1, "failed": 0, "bytes": 0, "released": 0}


# ---------------------------------------------------------------- real logs


def test_big_malloc_is_one_mapping_of_64_mib_and_its_munmap():
    result = parse(log("big_malloc"))
    big = [c for c in calls_of(result, "mmap") if c.size >= 64 * MiB]
    assert len(big) == 1 and 64 * MiB < big[0].size <= 64 * MiB + P
    freed = [c for c in calls_of(result, "munmap") if c.args[0] == hex(big[0].ret)]
    assert [c.size for c in freed] == [big[0].size]


def test_brk_loop_growth_is_the_distance_the_break_moved():
    result = parse(log("brk_loop"))
    breaks = [c.ret for c in calls_of(result, "brk")]
    assert result.totals["brk"]["bytes"] == breaks[-1] - breaks[0] > 4000 * 1000
    assert result.totals["brk"]["released"] == 0


def test_mmap_ops_partial_munmap_and_mremap_grow_and_shrink():
    result = parse(log("mmap_ops"))
    assert [c.size for c in calls_of(result, "mremap")] == [26 * P, -24 * P]
    assert result.totals["mremap"] == {"calls": 2, "failed": 0, "bytes": 26 * P,
                                       "released": 24 * P,
                                       "classes": {**dict.fromkeys(CLASSES, 0),
                                                   "committed": 26 * P}}
    assert [c.size for c in calls_of(result, "munmap")][-4:] == [4 * P, 6 * P, 8 * P, 8 * P]


def test_fail_shrink_failures_by_kind():
    result = parse(log("fail_shrink"))
    failed = {k: [c.errno for c in calls_of(result, k) if c.failed] for k in KINDS}
    assert failed == {"brk": [None], "mmap": ["ENOMEM"], "munmap": ["EINVAL"],
                      "mremap": ["EFAULT", "EINVAL"], "madvise": [], "mprotect": []}
    assert [c.size for c in calls_of(result, "brk")][-4:] == [256 * KiB, -64 * KiB, -32 * KiB, 0]
    assert result.totals["brk"]["released"] == 96 * KiB


def test_thread_moves_the_break_main_then_grows_from():
    result = parse(log("thread_alloc"))
    brk = calls_of(result, "brk")
    by_thread = [c for c in brk if c.tid != c.pid]
    assert [c.size for c in by_thread] == [256 * KiB, -64 * KiB]
    after = brk[brk.index(by_thread[-1]) + 1]
    assert after.size == after.ret - by_thread[-1].ret
    assert len({c.pid for c in result.calls}) == 1


def test_fork_exec_child_inherits_then_exec_starts_afresh():
    result = parse(log("fork_exec"))
    parent, child = result.pids
    child_brk = calls_of(result, "brk", child)
    assert child_brk[0].size == 128 * KiB  # from the inherited break
    assert child_brk[1].args == ("NULL",) and child_brk[1].size == 0  # exec_target starts
    assert calls_of(result, "brk", parent)[-1].size == 64 * KiB
    assert [c.size for c in calls_of(result, "mmap", child)][0] == 3 * MiB + P


def test_spawn_exec_joins_resumed_halves():
    result = parse(log("spawn_exec"))
    assert len(result.pids) == 3
    parent = result.pids[0]
    spawn_stacks = [c for c in calls_of(result, "munmap", parent) if c.size == 36864]
    assert len(spawn_stacks) == 2 and all(c.ret == 0 for c in spawn_stacks)


def test_threads_race_pairs_each_threads_calls():
    result = parse(log("threads_race"))
    threads = {c.tid for c in result.calls if c.tid != c.pid}
    assert len(threads) == 4
    for tid in threads:
        mine = [c for c in result.calls if c.tid == tid]
        maps = [c.size for c in mine if c.kind == "mmap"]
        unmaps = [c.size for c in mine if c.kind == "munmap"]
        assert maps == unmaps == [(1 + i % 8) * P for i in range(200)]


@pytest.mark.parametrize("name", sorted(p.stem for p in LOGS.glob("*.log")))
def test_every_call_line_is_counted(name):
    text = log(name)
    result = parse(text)
    for kind in KINDS:
        # Each call starts on exactly one line: complete or "<unfinished ...>".
        starts = re.findall(rf"^\d+\s+{kind}\(", text, re.MULTILINE)
        assert result.totals[kind]["calls"] == len(starts)
    assert result.totals["mmap"]["calls"] > 0 and result.totals["brk"]["calls"] > 0


@pytest.mark.parametrize("name", sorted(p.stem for p in LOGS.glob("*.log")))
def test_totals_are_the_sums_of_the_calls(name):
    result = parse(log(name))
    assert totals(result.calls) == result.totals
    doc = to_json(result)
    assert set(doc["events"]) == set(KINDS)


def _split(line: str) -> list:
    """One complete line written as strace writes a call another task interrupted."""
    m = re.match(r"^(\d+\s+)(\w+)\((.*)\)(\s*= .*)$", line)
    if not m:
        return [line]
    pid, name, args, ret = m.groups()
    return [f"{pid}{name}({args} <unfinished ...>", f"{pid}<... {name} resumed>){ret}"]


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["fork_exec", "thread_alloc", "fail_shrink", "mmap_ops"]),
       data=st.data())
def test_splitting_calls_in_two_changes_nothing(name, data):
    lines = log(name).splitlines()
    chosen = data.draw(st.sets(st.integers(0, len(lines) - 1)))
    split = [part for i, line in enumerate(lines)
             for part in (_split(line) if i in chosen else [line])]
    assert parse("\n".join(split)).totals == parse("\n".join(lines)).totals
