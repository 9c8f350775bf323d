"""The unwinder on freshly built programs, stopped live by gdb at each brk/mmap: the same
frames as gdb's backtrace, and the same chains of the program's own functions as
`perf record --call-graph dwarf` on the same binary (threads and forked children included)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter

import pytest

from heaptrace.stacks.symbols import Symbolizer
from heaptrace.stacks.unwind.dwarf import Unwinder
from tests.helpers import stackcapture
from tests.helpers.stackfixtures import load

OWN = {"main", "level1", "level2", "level3", "grow_heap", "map_pages", "map_chain",
       "thread_main", "thread_work", "child_work", "on_signal", "raise_it"}


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    root = tmp_path_factory.mktemp("stacks")
    bindir = str(root / "bin")
    stackcapture.build(bindir)
    for follow in ("parent", "child"):
        stackcapture.capture(bindir, str(root), "chain", follow)
    return root


def our_chains(root):
    chains = Counter()
    for follow in ("parent", "child"):
        for stop in load("chain", follow, root=str(root)):
            maps = stop.procmaps()
            walk = Unwinder(maps).walk(stop.pid, stop.ip, stop.sp, stop.bp, stop.stack)
            assert walk.complete, (stop.gdb_names, walk.stop)
            last = max(i for i, name in enumerate(stop.gdb_names) if name)
            assert walk.ips == stop.gdb_pcs[: last + 1]
            frames = Symbolizer(maps).stack(stop.pid, walk.ips)
            chains[tuple(f.name for f in frames if f.name in OWN)] += 1
    return chains


def perf_chains(binary, tmp_path):
    data = str(tmp_path / "perf.data")
    subprocess.run(["perf", "record", "-q", "-o", data, "-e",
                    "syscalls:sys_enter_brk,syscalls:sys_enter_mmap",
                    "--call-graph", "dwarf,16384", binary], check=True, capture_output=True)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], check=True,
                         capture_output=True, text=True).stdout
    chains = Counter()
    for block in out.split("\n\n"):
        names = re.findall(r"^\s*[0-9a-f]+ (\S+)", block, re.M)
        if names:
            chains[tuple(n for n in names if n in OWN)] += 1
    return chains


def test_same_frames_as_gdb_and_same_own_chains_as_perf(captured, tmp_path):
    ours = our_chains(captured)
    theirs = perf_chains(str(captured / "bin" / "chain"), tmp_path)
    assert ("grow_heap", "level3", "level2", "level1", "thread_work", "thread_main") in ours
    assert ("grow_heap", "level3", "level2", "level1", "child_work", "main") in ours
    assert ours == theirs
