"""Whole user stacks from real eBPF runs on programs built without frame pointers: the chain
down from main (or the thread's start) in the main thread, a second thread and a forked
child; the chains of the program's own functions equal `perf record --call-graph dwarf`'s;
C++ names demangled; at least 99% of bytes with whole stacks."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

from heaptrace.analysis.coverage import coverage
from heaptrace.recording import Recording
from tests.helpers.cli import argv

P = 4096
MiB = 1 << 20
OWN = {"main", "inner_malloc", "inner_mmap", "middle_layer", "outer_layer", "thread_body",
       "child_body", "grow_heap"}


def record(tmp_path, cmd, *options):
    db = tmp_path / "r.db"
    proc = subprocess.run(["setarch", "-R", *argv("run", "-o", str(db), *options, "--", *cmd)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return Recording(str(db))


def names_by_size(rec, kind):
    stacks = rec.stacks()
    found = {}
    for event in rec.events(kinds=[kind]):
        assert event.stack_id is not None, event
        found.setdefault(event.size, []).append([f.name for f in stacks[event.stack_id]])
    return found


@pytest.fixture(scope="module")
def deep(programs, tmp_path_factory):
    return record(tmp_path_factory.mktemp("deep"), [str(programs["stacks_deep"])])


@pytest.mark.parametrize("size,context,root", [
    (1 * MiB + P, ["main", "__libc_start_call_main", "__libc_start_main", "_start"], "_start"),
    (2 * MiB + P, ["thread_body", "start_thread", "clone3"], "clone3"),
    (3 * MiB + P, ["child_body", "main", "__libc_start_call_main"], "_start"),
])
def test_malloc_chain_is_whole_in_each_context(deep, size, context, root):
    (stack,) = names_by_size(deep, "mmap")[size]
    expected = ["malloc", "inner_malloc", "middle_layer", "outer_layer", *context]
    own = [n for n in stack if n in expected]
    assert own == expected, stack
    assert stack[0] == "mmap" and stack[-1] == root, stack


@pytest.mark.parametrize("pages,context", [(17, "main"), (18, "thread_body"),
                                           (19, "child_body")])
def test_direct_mmap_chain(deep, pages, context):
    (stack,) = names_by_size(deep, "mmap")[pages * P]
    assert stack[1:5] == ["inner_mmap", "middle_layer", "outer_layer", context], stack


def test_heap_growth_by_brk_is_attributed_to_grow_heap(deep):
    growth = [s for size, stacks in names_by_size(deep, "brk").items() if size > 0
              for s in stacks]
    assert any("grow_heap" in s and s[-1] == "_start" for s in growth)


def test_nearly_every_byte_has_a_whole_stack(deep):
    cov = coverage(deep)
    assert cov.events_with_stack == cov.events_total
    assert cov.whole_share >= 0.99, cov
    assert cov.unsymbolized_share <= 0.01, cov


def perf_own_chains(binary, tmp_path):
    data = str(tmp_path / "perf.data")
    subprocess.run(["setarch", "-R", "perf", "record", "-q", "-o", data, "-e",
                    "syscalls:sys_exit_brk,syscalls:sys_exit_mmap", "--call-graph",
                    "dwarf,16384", binary], check=True, capture_output=True)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], check=True,
                         capture_output=True, text=True).stdout
    chains = Counter()
    for block in out.split("\n\n"):
        names = re.findall(r"^\s*[0-9a-f]+ (\S+)", block, re.M)
        chains[tuple(n for n in names if n in OWN)] += bool(names)
    return +chains


def test_own_chains_equal_perf_dwarf(deep, programs, tmp_path):
    stacks = deep.stacks()
    ours = Counter(tuple(f.name for f in stacks[e.stack_id] if f.name in OWN)
                   for e in deep.events(kinds=["brk", "mmap"]))
    theirs = perf_own_chains(str(programs["stacks_deep"]), tmp_path)
    assert +ours == theirs


def test_cpp_names_are_demangled(programs, tmp_path):
    rec = record(tmp_path, [str(programs["templates"])])
    names = {f.name for stack in rec.stacks().values() for f in stack}
    assert any(re.fullmatch(r"heaptest::pools::Pool<.*>::grow\(\)", n) for n in names), names
    assert any(n.startswith("heaptest::io::Buffer<char>::reserve(") for n in names), names
    assert coverage(rec).whole_share >= 0.99


def test_fp_mode_records_kernel_stacks(programs, tmp_path):
    rec = record(tmp_path, [str(programs["big_malloc"])], "--unwind", "fp")
    assert rec.meta().unwind == "fp"
    assert all(e.stack_id is not None for e in rec.events())


@pytest.mark.parametrize("name", ["fork_exec", "spawn_exec"])
def test_exec_images_are_not_confused(programs, tmp_path, name):
    """A child that execs a short-lived program: its stacks name the new program's functions
    (found from its auxiliary vector and its library mappings, not from /proc after it left)."""
    rec = record(tmp_path, [str(programs[name])])
    stacks = rec.stacks()
    execs = {p.pid for p in rec.processes() if p.comm == "exec_target"}
    assert execs
    after = [[f.name for f in stacks[e.stack_id]] for e in rec.events() if e.pid in execs
             and e.ts_ns >= max(p.start_ns for p in rec.processes()
                                if p.pid == e.pid and p.comm == "exec_target")]
    assert after and all(s[-1] == "_start" for s in after)
    assert not any("spawn_and_wait" in s or "child_body" in s for s in after)
    cov = coverage(rec)
    assert cov.whole_share >= 0.99 and cov.unsymbolized_share <= 0.01, cov


def test_a_stack_cut_short_ends_in_a_truncated_frame(programs, tmp_path):
    """Copies of 64 bytes of stack cannot be unwound far: the cut stacks say so at their
    root, whole ones do not, and the summary counts the cut ones."""
    db = tmp_path / "cut.db"
    proc = subprocess.run(argv("run", "-o", str(db), "--stack-bytes", "64", "--",
                               str(programs["stacks_deep"])), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    stacks = list(Recording(str(db)).stacks().values())
    cut = [s for s in stacks if s[-1].name == "[truncated]"]
    assert cut and all(s[-1].name in ("[truncated]", "_start", "clone3") for s in stacks)
    assert all(f.name != "[truncated]" for s in stacks for f in s[:-1])
    assert f"{len(cut):,} stacks cut short" in proc.stderr
