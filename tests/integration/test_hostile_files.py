"""Files the traced program or another user controls can neither hang, bloat nor spoof a root
heaptrace: /tmp/perf-PID.map is read only when it is a regular file owned by the process's
user, mapped files through /proc/PID/map_files (never by a path resolved in heaptrace's own cwd),
a deleted binary through map_files and its build-id."""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import heaptrace
from tests.helpers.programs import compile_own as cc

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
LIMIT = 120  # seconds: what "never hangs" means here (before: forever)


def folded(db: Path) -> str:
    proc = heaptrace("flame", "--folded", str(db))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def as_nobody(*command: str) -> None:
    subprocess.run([*NOBODY, *command], check=True)


@pytest.fixture(scope="module")
def jit_run(tmp_path_factory):
    """A recording of jit.c, whose own perf map (written as root, its user) names its JIT
    trampoline; the map is removed afterwards, for the tests to plant theirs."""
    if platform.machine() != "x86_64":
        pytest.skip("jit.c's trampoline is x86_64 machine code")
    work = tmp_path_factory.mktemp("jit")
    program = cc("jit.c", work / "jit", "-O0", "-fno-omit-frame-pointer")
    db = work / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), timeout=LIMIT)
    assert run.returncode == 0, run.stderr
    pid = int(re.search(r"pid=(\d+)", run.stdout).group(1))
    perf_map = Path(f"/tmp/perf-{pid}.map")
    try:
        assert "jitted_trampoline;grow;mmap 8388608" in folded(db)
    finally:
        perf_map.unlink()
    return db, perf_map


def symbolize(db: Path) -> subprocess.CompletedProcess:
    """`heaptrace symbolize` in a child whose memory is capped at 1 GiB: a map that never
    ends fails it, instead of the machine."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    return heaptrace("symbolize", str(db), timeout=LIMIT, preexec_fn=cap)


def test_a_perf_map_planted_by_another_user_is_ignored(jit_run):
    db, perf_map = jit_run
    as_nobody("sh", "-c", f"printf '0 ffffffffffff planted_by_nobody\\n' > {perf_map}")
    try:
        assert symbolize(db).returncode == 0
        text = folded(db)
        assert "planted_by_nobody" not in text and "jitted_trampoline" not in text
        assert ";0x" in text  # the JIT frame is an address again: nobody named it
    finally:
        perf_map.unlink()


@pytest.mark.parametrize("plant", [["mkfifo"], ["ln", "-s", "/dev/zero"]],
                         ids=["fifo", "link-to-dev-zero"])
def test_a_perf_map_that_would_block_or_never_end_is_skipped(jit_run, plant):
    db, perf_map = jit_run
    as_nobody(*plant, str(perf_map))
    try:
        proc = symbolize(db)
        assert proc.returncode == 0, proc.stderr
        assert "Symbolized" in proc.stdout
    finally:
        perf_map.unlink()


@pytest.fixture(scope="module")
def swapmap(tmp_path_factory):
    work = tmp_path_factory.mktemp("swapmap")
    lib_source = work / "src"
    lib_source.mkdir()
    lib = cc("dlswap_lib.c", lib_source / "liba.so", "-shared", "-fPIC", "-DGROW=grow_in_a",
             "-DPAD=2048")
    return cc("swapmap.c", work / "swapmap", "-ldl"), lib


@pytest.mark.parametrize("mode", ["fifo", "zero"])
def test_a_mapped_file_swapped_for_a_fifo_or_dev_zero_is_read_through_map_files(
        swapmap, tmp_path, mode):
    program, lib = swapmap
    target_dir, own_cwd = tmp_path / "target", tmp_path / "heaptrace-cwd"
    target_dir.mkdir()
    own_cwd.mkdir()
    (target_dir / "liba.so").write_bytes(lib.read_bytes())
    os.mkfifo(own_cwd / "liba.so")  # what "./liba.so" would name in heaptrace's own cwd
    db = tmp_path / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), str(target_dir), "liba.so", mode,
                    cwd=own_cwd, timeout=LIMIT)
    assert run.returncode == 0, run.stderr
    # The library was read through map_files while the program ran: named, whole stack.
    assert ";main;grow_in_a;mmap 8388608" in folded(db)


def test_a_program_that_deletes_its_own_binary_is_still_named(tmp_path):
    program = cc("selfdelete.c", tmp_path / "selfdelete")
    db = tmp_path / "r.db"
    run = heaptrace("run", "-o", str(db), "--", str(program), timeout=LIMIT)
    assert run.returncode == 0, run.stderr
    assert not program.exists()
    assert ("selfdelete;_start;__libc_start_main;__libc_start_call_main;main;level1;level2;"
            "mmap 8388608") in folded(db)
