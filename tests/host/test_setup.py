"""Installed as the README says (issue 13, item 2): `make demo` installs what running
heaptrace needs and puts `heaptrace` on PATH; `make test` adds the test tools; `make clean`
takes the link away. Nothing here runs apt: the package sets are listed, the Makefile is
read with `make -n`, and the link is made in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-system.sh"
LINK = ROOT / "scripts" / "link-command.sh"
TEST_ONLY = {"chromium", "gdb", "strace", "libc6-dbg", "linux-perf", "golang-go", "npm",
             "protobuf-compiler", "g++", "sqlite3"}


def packages(mode: str) -> set:
    out = subprocess.run(["bash", str(SETUP), "--list", mode], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_demo_installs_only_what_running_heaptrace_needs():
    run, test = packages("run"), packages("test")
    assert {"python3-bpfcc", "python3-venv", "gcc", "make", "libc6-dev"} <= run
    assert not run & TEST_ONLY
    assert run < test
    assert TEST_ONLY.issubset(test)


def dry_run(target: str) -> str:
    return subprocess.run(["make", "-n", "-B", "-C", str(ROOT), target, "BINDIR=/nonexistent/bin"],
                          capture_output=True, text=True, check=True).stdout


def test_make_demo_and_test_take_their_own_sets_and_link_the_command():
    demo, test = dry_run("demo"), dry_run("test")
    assert "setup-system.sh run" in demo and "setup-system.sh test" not in demo
    assert "[test]" not in demo  # the Python test packages neither
    assert "setup-system.sh test" in test and "[test]" in test
    entry = str(ROOT / ".venv" / "bin" / "heaptrace")
    for plan in (demo, test):
        assert f"BINDIR=/nonexistent/bin bash scripts/link-command.sh install {entry}" in plan
    assert f"link-command.sh remove {entry}" in dry_run("clean")


def link(action: str, entry: str, bindir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LINK), action, entry], capture_output=True, text=True,
                          env={**os.environ, "BINDIR": str(bindir)})


def test_the_link_runs_heaptrace_from_any_directory_and_clean_removes_it(tmp_path):
    bindir = tmp_path / "bin"
    entry = str(Path(sys.executable).parent / "heaptrace")
    assert os.access(entry, os.X_OK), "the venv's entry point"
    assert link("install", entry, bindir).returncode == 0
    assert os.readlink(bindir / "heaptrace") == entry
    # as root with a minimal PATH, from another directory: what `sudo heaptrace` finds
    proc = subprocess.run(["heaptrace", "--version"], cwd="/", capture_output=True, text=True,
                          env={"PATH": f"{bindir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    assert proc.returncode == 0 and "heaptrace" in proc.stdout
    assert link("install", entry, bindir).returncode == 0  # again: nothing to do
    assert link("remove", "/elsewhere/.venv/bin/heaptrace", bindir).returncode == 0
    assert (bindir / "heaptrace").is_symlink()  # not ours to remove
    assert link("remove", entry, bindir).returncode == 0
    assert not (bindir / "heaptrace").exists()


def test_a_heaptrace_installed_otherwise_is_left_alone(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "heaptrace").write_text("#!/bin/sh\necho mine\n")
    proc = link("install", "/some/.venv/bin/heaptrace", bindir)
    assert proc.returncode == 0 and "not a link" in proc.stderr
    assert (bindir / "heaptrace").read_text().endswith("echo mine\n")
    assert link("install", "relative/path", bindir).returncode == 2
