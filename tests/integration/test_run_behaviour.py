"""`heaptrace run` behaves like the command it wraps: exit codes, signals, stdio, errors."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time

from tests.helpers.cli import argv, attached, heaptrace, histogram_json


def test_exit_code_and_stdio_pass_through(tmp_path):
    db = tmp_path / "r.db"
    proc = heaptrace("run", "-o", str(db), "--", "sh", "-c", "cat; echo err >&2; exit 3",
                     input="hello from stdin\n")
    assert proc.returncode == 3
    assert proc.stdout == "hello from stdin\n"
    assert "err\n" in proc.stderr
    assert f"Wrote {db}" in proc.stderr
    meta = histogram_json(db)["recording"]
    assert meta["exit_code"] == 3
    assert meta["page_size"] == os.sysconf("SC_PAGE_SIZE")  # what munmap rounds up to


def test_killed_target_gives_128_plus_signal_and_a_readable_recording(tmp_path):
    db = tmp_path / "r.db"
    proc = heaptrace("run", "-o", str(db), "--", "sh", "-c", "kill -SEGV $$")
    assert proc.returncode == 128 + signal.SIGSEGV
    doc = histogram_json(db)
    assert doc["events"]["mmap"]["calls"] > 0
    assert doc["recording"]["exit_code"] == 128 + signal.SIGSEGV


def test_sigterm_is_forwarded_and_the_recording_finished(tmp_path):
    db = tmp_path / "r.db"
    ready = tmp_path / "ready"
    script = (f"import signal,sys,time\n"
              f"signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
              f"b = bytearray(8 << 20)\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)\n")
    proc = subprocess.Popen(argv("run", "-o", str(db), "--", sys.executable, "-c", script),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 42, err
    doc = histogram_json(db)
    assert doc["events"]["mmap"]["bytes"] >= 8 << 20
    assert doc["recording"]["exit_code"] == 42
    assert doc["recording"]["peak_rss"] >= 8 << 20  # the bytearray is touched: resident


def test_command_not_found_is_127_with_one_line(tmp_path):
    db = tmp_path / "r.db"
    proc = heaptrace("run", "-o", str(db), "--", "no-such-command-heaptrace")
    assert proc.returncode == 127
    assert proc.stderr.strip().splitlines()[-1] == (
        "heaptrace: error: command not found: no-such-command-heaptrace")
    assert "Traceback" not in proc.stderr
    assert not db.exists()


def test_not_executable_is_126(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "--", str(script))
    assert proc.returncode == 126
    assert "Permission denied" in proc.stderr and "Traceback" not in proc.stderr


def test_unprivileged_user_gets_one_line_saying_how_to_rerun(tmp_path):
    os.chmod(tmp_path, 0o777)
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
         *argv("run", "-o", str(tmp_path / "r.db"), "--", "true")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "heaptrace: error: loading eBPF programs needs root or CAP_BPF+CAP_PERFMON")
    assert "sudo" in last and "Traceback" not in proc.stderr


def test_missing_bcc_points_at_doctor(tmp_path):
    hidden = tmp_path / "hidden" / "bcc"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(hidden.parent)}
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "--", "true", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "heaptrace: error: the bcc Python module is not importable "
        "(run `heaptrace doctor` to see how to install it)")


def test_doctor_reports_every_check_ok_here():
    proc = heaptrace("doctor")
    assert proc.returncode == 0, proc.stdout
    names = [line[5:25].strip() for line in proc.stdout.splitlines()]
    assert names == ["kernel BPF support", "privileges", "bcc Python module", "kernel headers",
                     "tracefs", "RSS tracepoints", "test tools"]
    assert all(line.startswith("ok") for line in proc.stdout.splitlines())


def test_attach_to_a_running_process_for_a_duration(tmp_path):
    db = tmp_path / "r.db"
    script = ("import time\nkeep = []\nwhile True:\n"
              "    keep.append(bytearray(1 << 20)); time.sleep(0.02)\n")
    target = subprocess.Popen(["/usr/bin/python3", "-c", script])
    try:
        proc = heaptrace("run", "-o", str(db), "-p", str(target.pid), "--duration", "1.5")
        assert proc.returncode == 0, proc.stderr
        assert target.poll() is None  # left running
        doc = histogram_json(db)
        assert doc["events"]["mmap"]["bytes"] >= 10 << 20
        assert doc["recording"]["attached"] is True
        assert doc["recording"]["attach_end"] == "duration"
    finally:
        target.kill()
        target.wait()


def test_attach_for_a_duration_ends_under_a_flood(tmp_path, programs):
    # A tight mmap/munmap loop makes records faster than they are handed on: the backlog
    # never empties, and --duration must still end the tracing (each poll hands records on
    # for a bounded time, then the main loop gets its turn), the rest drained after.
    db = tmp_path / "r.db"
    target = subprocess.Popen([str(programs["mmap_flood"])], stderr=subprocess.PIPE, text=True)
    try:
        assert target.stderr.readline().strip() == "flooding"
        proc = subprocess.run(argv("run", "-o", str(db), "-p", str(target.pid),
                                   "--duration", "2"),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert target.poll() is None  # left running
        doc = histogram_json(db)
        assert doc["recording"]["attach_end"] == "duration"
        assert doc["recording"]["lost_events"] == 0
        mmaps, munmaps = doc["events"]["mmap"]["calls"], doc["events"]["munmap"]["calls"]
        assert mmaps > 10_000 and abs(mmaps - munmaps) <= 1  # every call of the loop
    finally:
        target.kill()
        target.wait()


def test_attach_ends_when_the_process_exits(tmp_path, programs):
    db, go = tmp_path / "r.db", tmp_path / "go"
    target = subprocess.Popen(
        ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done; {programs['big_malloc']}"])
    proc = attached(str(db), target.pid)
    go.touch()
    target.wait()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    doc = histogram_json(db)
    assert doc["recording"]["attach_end"] == "exited"
    assert doc["events"]["mmap"]["bytes"] >= 64 << 20  # the child the shell started


def test_attach_needs_a_live_pid_and_not_a_command(tmp_path):
    proc = heaptrace("run", "-o", str(tmp_path / "r.db"), "-p", "999999999")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "heaptrace: error: no running process with pid 999999999")
    proc = heaptrace("run", "-p", "1", "--", "true")
    assert proc.returncode == 2 and "either a command" in proc.stderr


def test_recording_of_a_killed_heaptrace_is_readable_and_symbolizable(tmp_path):
    db = tmp_path / "r.db"
    script = ("import time\nkeep = []\nwhile True:\n"
              "    keep.append(bytearray(1 << 20)); time.sleep(0.01)\n")
    proc = subprocess.Popen(argv("run", "-o", str(db), "--", "/usr/bin/python3", "-c", script),
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120  # the probe compiles first: slow on a busy machine
    while not db.exists():  # the recording takes the output's name once the command runs
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(3)  # a few checkpoints
    os.killpg(proc.pid, signal.SIGKILL)  # heaptrace and its target, no chance to finish
    proc.wait()
    doc = histogram_json(db)
    assert doc["recording"]["complete"] is False
    assert doc["events"]["mmap"]["calls"] > 50  # exact totals from the last checkpoint
    text = heaptrace("histogram", str(db)).stdout
    assert "recording cut short" in text
    proc = heaptrace("symbolize", str(db))
    assert proc.returncode == 0, proc.stderr
    folded = heaptrace("flame", str(db), "--folded").stdout
    assert "bytearray___init__" in folded or "PyByteArray_Resize" in folded, folded[:2000]


def test_ctrl_c_at_a_terminal_ends_the_target_and_finishes_the_recording(tmp_path):
    """In a real pseudo-terminal: Ctrl-C reaches the target (same process group) once, the
    target dies of SIGINT, heaptrace exits 130 with the recording finished."""
    db = str(tmp_path / "r.db")
    script = "import time\nb = bytearray(4 << 20)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, argv("run", "-o", db, "--", "/usr/bin/python3", "-c", script))
    out = b""
    deadline = time.monotonic() + 60
    while b"ready" not in out and time.monotonic() < deadline:
        out += os.read(fd, 1024)
    os.write(fd, b"\x03")
    while True:
        try:
            out += os.read(fd, 4096)
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGINT, out.decode()
    assert f"Wrote {db}" in out.decode()
    doc = histogram_json(tmp_path / "r.db")
    assert doc["recording"]["complete"] is True
    assert doc["recording"]["exit_code"] == 128 + signal.SIGINT
    assert doc["events"]["mmap"]["bytes"] >= 4 << 20
