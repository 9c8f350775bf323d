"""Signals stay deliverable while tracing: the first SIGTERM goes to the target, a second one
ends heaptrace with the recording finished, even when the target ignores SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from tests.helpers.cli import HEAPTRACE, attached, histogram_json


def test_a_second_sigterm_ends_heaptrace_and_finishes_the_recording(tmp_path):
    db, ready, pid_file = tmp_path / "r.db", tmp_path / "ready", tmp_path / "pid"
    # The target ignores SIGTERM (and so do the sleep and python it starts).
    script = (f"trap '' TERM; echo $$ > {pid_file}; "
              f"python3 -c 'b = bytearray(8 << 20); open(\"{ready}\", \"w\")'; exec sleep 600")
    log = tmp_path / "stderr"  # a file: the target, left running, keeps a pipe open
    with log.open("w") as stderr:
        proc = subprocess.Popen([*HEAPTRACE, "run", "-o", str(db), "--", "sh", "-c", script],
                                stderr=stderr)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.05)
    target = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGTERM)  # passed on, and ignored
        time.sleep(1)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)  # the second: heaptrace ends
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()
        err = log.read_text()
        assert (f"heaptrace: error: stopped by SIGTERM: the recording is finished; PID {target} "
                "was left running") in err
        os.kill(target, 0)  # left running, untraced
        doc = histogram_json(db)
        assert doc["recording"]["stopped_by"] == "SIGTERM"
        assert doc["recording"]["complete"] is True
        assert doc["events"]["mmap"]["bytes"] >= 8 << 20
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


def test_heaptrace_stopped_and_continued_while_attached_goes_on_to_the_end(tmp_path, programs):
    # Ctrl-Z and fg, SIGSTOP and SIGCONT, a debugger attaching: the signal watcher's wait is
    # interrupted, and CPython's sigtimedwait then returned a siginfo the kernel never wrote.
    # With -p its "signal 0" ended a whole-system run with "internal error while recording:
    # ValueError: 0 is not a valid Signals", the recording cut short.
    db = tmp_path / "r.db"
    target = subprocess.Popen([str(programs["mmap_flood"])], stderr=subprocess.PIPE, text=True)
    try:
        assert target.stderr.readline().strip() == "flooding"
        proc = attached(str(db), target.pid, "--duration", "5")
        for _ in range(4):
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.4)
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.2)
        err = proc.communicate(timeout=300)[1]
        assert proc.returncode == 0, err
        assert "error" not in err
        doc = histogram_json(db)
        assert doc["recording"]["attach_end"] == "duration"
        assert doc["recording"]["complete"] is True
        assert doc["events"]["mmap"]["calls"] > 1000
    finally:
        target.kill()
        target.wait()
