"""`run -p` attaches to the process the user named, and only to it: a pid reused by another
process while tracing was being set up is caught (by its start time), and attaching to init
says it traces the whole system and leaves heaptrace itself out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Tuple

from heaptrace.recording import Recording
from tests.helpers.cli import HEAPTRACE, histogram_json

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def spawn_with_pid(pid: int, tries: int = 20) -> subprocess.Popen:
    """A `sleep` whose pid is `pid` (free again): the kernel hands out ns_last_pid + 1 next,
    unless another process forks in between; then that one is killed and we try again."""
    for _ in range(tries):
        with open(NS_LAST_PID, "w") as f:
            f.write(str(pid - 1))
        proc = subprocess.Popen(["sleep", "60"])
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    raise AssertionError(f"could not get pid {pid} back in {tries} tries")


def test_a_pid_reused_during_start_up_is_not_traced(tmp_path):
    db = tmp_path / "r.db"
    victim = subprocess.Popen(["sleep", "60"])
    tracer = subprocess.Popen([*HEAPTRACE, "run", "-o", str(db), "-p", str(victim.pid)],
                              stderr=subprocess.PIPE, text=True)
    assert tracer.stderr.readline().startswith("heaptrace: tracing")  # checked; now compiling
    os.kill(tracer.pid, signal.SIGSTOP)  # hold it there while the pid changes hands
    victim.kill()
    victim.wait()
    impostor = spawn_with_pid(victim.pid)
    try:
        os.kill(tracer.pid, signal.SIGCONT)
        err = tracer.stderr.read()
        assert tracer.wait(timeout=120) == 2, err
        assert (f"heaptrace: error: process {victim.pid} (sleep) ended while tracing was being "
                "set up") in err
        assert "attached" not in err and not db.exists()
        assert impostor.poll() is None  # untouched
    finally:
        impostor.kill()
        impostor.wait()


WARNING = "heaptrace: warning: PID 1 is the root of every process: this traces the whole system"


def wait_for(text: str, log: Path, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.1)


def attach_to_init(tmp_path: Path) -> Tuple[subprocess.Popen, Path, Path]:
    """`run -p 1`, stopped by SIGINT once it said it traces the whole system (the whole
    system is a lot to record); returns the run, its recording and its stderr."""
    db, log = tmp_path / "r.db", tmp_path / "stderr"  # a file: every process may hold a pipe
    with log.open("w") as stderr:
        proc = subprocess.Popen([*HEAPTRACE, "run", "-o", str(db), "-p", "1"], stderr=stderr)
    wait_for(WARNING, log, proc, 300)
    proc.send_signal(signal.SIGINT)
    return proc, db, log


def test_attaching_to_init_warns_and_leaves_heaptrace_out(tmp_path):
    proc, db, log = attach_to_init(tmp_path)
    # Finishing a whole system's recording is bounded (it was not: 13 GB, and no end in 300 s)
    assert proc.wait(timeout=300) == 0, log.read_text()
    with Recording(str(db)) as rec:
        pids = {p.pid for p in rec.processes()}
        event_pids = {e.pid for e in rec.events()}
        assert rec.meta().unfinished is None
    assert 1 in pids and len(pids) > 2
    assert proc.pid not in pids | event_pids  # heaptrace never traces itself


def test_a_second_stop_signal_ends_the_finishing_at_once_with_the_recording_readable(tmp_path):
    proc, db, log = attach_to_init(tmp_path)
    # Right behind the SIGINT that ends the tracing (a different signal: two pending SIGINTs
    # would be one): finishing a whole system's recording is not waited for, however long.
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    name = signal.Signals(code - 128).name if code > 128 else str(code)
    assert name in ("SIGINT", "SIGTERM"), log.read_text()
    doc = histogram_json(db)
    meta = doc["recording"]
    if meta["complete"]:  # the records buffered when tracing ended were all written first
        said = f"stopped by {name} while finishing {db}: every event is in it"
    else:  # or it cut that short too: what was not written is counted
        said = (f"stopped by {name} while writing the records buffered when tracing ended: "
                f"{meta['events_unwritten']:,} events were not written to {db}")
        assert meta["incomplete_reason"].startswith(f"stopped by {name} while the records")
    assert f"heaptrace: error: {said}" in log.read_text()
    assert meta["attached"] is True and "heaptrace symbolize" in meta["unfinished"]
    with Recording(str(db)) as rec:  # what it holds is there to read: every process attached
        assert 1 in {p.pid for p in rec.processes()}
        meta = rec.meta()
        assert rec.event_count() == meta.events_recorded + meta.resident_sums
