"""Signals stay deliverable while tracing: the first SIGTERM goes to the target, a second one
ends heaptrace with the recording finished, even when the target ignores SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from heaptrace.recording import Recording
from tests.helpers.cli import HEAPTRACE, attached, heaptrace, histogram_json


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


def test_heaptrace_stopped_and_continued_while_attached_goes_on_to_the_end(tmp_path):
    # Ctrl-Z and fg, SIGSTOP and SIGCONT, a debugger attaching: the signal watcher's wait is
    # interrupted, and CPython's sigtimedwait then returned a siginfo the kernel never wrote.
    # With -p its "signal 0" ended a whole-system run with "internal error while recording:
    # ValueError: 0 is not a valid Signals" (here: a traceback once the file was written).
    db = tmp_path / "r.db"
    target = subprocess.Popen(["sleep", "600"])
    try:
        proc = attached(str(db), target.pid, "--duration", "5")
        for _ in range(4):
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.4)
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.2)
        err = proc.communicate(timeout=300)[1]
        assert proc.returncode == 0, err
        assert "error" not in err and "Traceback" not in err
        doc = histogram_json(db)
        assert doc["recording"]["attach_end"] == "duration"
        assert doc["recording"]["complete"] is True
    finally:
        target.kill()
        target.wait()


def test_a_second_stop_signal_cuts_the_drain_of_a_flood_and_says_what_was_not_written(
        tmp_path, programs):
    # Once the probe is detached, the records buffered are handed on and written; under a
    # flood that is a long backlog. A SIGTERM then ends heaptrace without waiting for it:
    # the file says it is incomplete, how many events were not written, and stays readable.
    db = tmp_path / "r.db"
    target = subprocess.Popen([str(programs["mmap_flood"])], stderr=subprocess.PIPE, text=True)
    try:
        assert target.stderr.readline().strip() == "flooding"
        proc = attached(str(db), target.pid)
        time.sleep(3)  # the flood outruns heaptrace: a backlog builds up
        proc.send_signal(signal.SIGINT)
        lines = []
        while not (line := proc.stderr.readline()).startswith("heaptrace: writing the "):
            assert line, "".join(lines)  # the drain was waited for: it said so first
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "heaptrace: error: stopped by SIGTERM while writing the records buffered when " \
               "tracing ended: " in err and f"events were not written to {db}" in err
    finally:
        target.kill()
        target.wait()
    doc = histogram_json(db)
    meta = doc["recording"]
    assert meta["complete"] is False and "stopped by SIGTERM" in meta["incomplete_reason"]
    assert meta["events_unwritten"] > 0 and meta["lost_events"] == 0
    # Every call the probe counted is in the file or counted unwritten (the flood touches
    # no page: no sum of resident growth).
    calls = sum(kind["calls"] for name, kind in doc["events"].items() if name != "resident")
    assert calls == meta["events_recorded"] + meta["events_unwritten"]
    with Recording(str(db)) as rec:
        assert rec.event_count() == meta["events_recorded"] + meta["resident_sums"]
    assert "heaptrace symbolize" in meta["unfinished"]
    heaptrace("symbolize", str(db), check=True)  # finishes what it can: the stacks
    after = histogram_json(db)["recording"]
    assert after["unfinished"] is None and after["complete"] is False
    assert "INCOMPLETE: stopped by SIGTERM" in heaptrace("report", str(db), check=True).stdout
