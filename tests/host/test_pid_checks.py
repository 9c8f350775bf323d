"""`run -p` says why a process of this host cannot be traced, before anything starts: a kernel
thread, a pid no process has, a zombie (each read from /proc)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import heaptrace


def one_line_usage_error(proc: subprocess.CompletedProcess, words: str) -> None:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("heaptrace: error: ")
    assert words in proc.stderr, proc.stderr


@pytest.mark.parametrize("pid, reason", [
    ("2", "PID 2 (kthreadd) is a kernel thread"),
    ("4194304", "no running process with pid 4194304"),  # above pid_max: never a process
])
def test_pids_that_are_no_user_process_are_refused_with_the_reason(tmp_path, pid, reason):
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "-p", pid)
    one_line_usage_error(proc, reason)
    assert "tracing" not in proc.stderr  # refused before the start line
    assert not (tmp_path / "r.db").exists()


def test_a_zombie_is_no_running_process(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    try:
        one_line_usage_error(heaptrace("run", "-p", str(child.pid)), "no running process")
    finally:
        child.wait()
