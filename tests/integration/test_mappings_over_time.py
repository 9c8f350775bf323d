"""What an address means changes over time: dlclose then dlopen of another library at the same
address, and processes gone before heaptrace read their records. Compared with the truth the
program prints (where each library was loaded, what it allocated)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Dict, Tuple

import pytest

from tests.helpers.cli import heaptrace
from tests.helpers.programs import compile_own as cc

WHOLE = "dlswap;_start;__libc_start_main;__libc_start_call_main;main;load;"


@pytest.fixture(scope="module")
def dlswap(tmp_path_factory) -> Tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("dlswap")
    libs = [cc("dlswap_lib.c", work / f"lib{tag}.so", "-shared", "-fPIC", f"-DGROW=grow_in_{tag}",
               f"-DPAD={pad}") for tag, pad in (("a", 2048), ("b", 8192))]
    return cc("dlswap.c", work / "dlswap", "-ldl"), libs[0], libs[1]


def truth(stdout: str) -> Dict[str, Tuple[str, int]]:
    """{"A": (base address, bytes), ...} as the program printed it."""
    lines = re.findall(r"^(\w) base=(\S+) grow=\S+ bytes=(\d+)$", stdout, re.MULTILINE)
    return {tag: (base, int(n)) for tag, base, n in lines}


def bytes_by_stack(db: Path) -> Counter:
    proc = heaptrace("flame", "--folded", str(db))
    assert proc.returncode == 0, proc.stderr
    found: Counter = Counter()
    for line in proc.stdout.splitlines():
        stack, count = line.rsplit(" ", 1)
        found[stack] += int(count)
    return found


def test_a_library_loaded_where_another_was_gets_its_own_bytes(dlswap, tmp_path):
    program, lib_a, lib_b = dlswap
    db = tmp_path / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), str(lib_a), str(lib_b))
    assert run.returncode == 0, run.stderr
    told = truth(run.stdout)
    assert told["A"][0] == told["B"][0], f"B was not loaded where A was: {told}"
    stacks = bytes_by_stack(db)
    # Whole stacks through each library's own function: library B's rules differ from A's at
    # the same addresses (another frame size), so A's must not be used to walk B's stacks.
    grown = {k: v for k, v in stacks.items() if "grow_in" in k or v >= 1 << 20}
    assert stacks[WHOLE + "grow_in_a;mmap"] == told["A"][1] == 8 << 20, grown
    assert stacks[WHOLE + "grow_in_b;mmap"] == told["B"][1] == 40 << 20, grown


def test_a_process_gone_before_its_records_were_read_keeps_its_library(dlswap, tmp_path):
    program, lib_a, _ = dlswap
    db = tmp_path / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), str(lib_a))
    assert run.returncode == 0, run.stderr
    assert truth(run.stdout)["A"][1] == 8 << 20
    stacks = bytes_by_stack(db)
    assert stacks[WHOLE + "grow_in_a;mmap"] == 8 << 20, stacks
