"""The signal watcher: signals reach heaptrace whatever its main thread is doing; and while a
recording is finished, a stop signal cuts short what may be done again later."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading

import pytest

from heaptrace.capture.signals import FinishingCut, FinishWatch, SignalWatch, TracingStopped


def later(seconds: float, signum: int) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signum)).start()


def test_the_first_sigterm_is_passed_on_the_second_stops_even_a_stuck_main_thread():
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    read, write = os.pipe()
    try:
        with pytest.raises(TracingStopped) as stopped, SignalWatch(stop_after=2) as watch:
            watch.target = target.pid
            later(0.2, signal.SIGTERM)
            later(1.0, signal.SIGTERM)
            os.read(read, 1)  # blocks for good: nobody writes (a FIFO open() would too)
        assert target.wait(timeout=10) == -signal.SIGTERM  # the first one, passed on
        assert stopped.value.exit_code == 128 + signal.SIGTERM
        assert str(stopped.value) == ("stopped by SIGTERM: the recording is finished; "
                                      f"PID {target.pid} was left running")
    finally:
        target.kill()
        target.wait()
        os.close(read)
        os.close(write)


def test_with_pid_the_first_signal_stops_and_nothing_is_passed_on():
    with SignalWatch(stop_after=1, forward=False) as watch:
        later(0.1, signal.SIGHUP)
        event = threading.Event()
        while watch.stop_signal is None:
            event.wait(0.05)
        with pytest.raises(TracingStopped) as stopped:
            watch.check()
    assert "left running" not in str(stopped.value)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handler restored


def test_a_nudge_first_asks_the_main_thread_to_come_back_by_itself():
    # Handing the probe's records on, the main thread can be asked to return after the record
    # it is on (nothing is lost); an exception is raised into it only where it cannot.
    asked = []

    def interrupt() -> bool:
        asked.append(1)
        return len(asked) == 1  # the first time: in the callback, asked to come back

    with pytest.raises(TracingStopped), SignalWatch(stop_after=1, forward=False,
                                                    interrupt=interrupt):
        later(0.1, signal.SIGHUP)
        event = threading.Event()
        for _ in range(600):  # never calls check(): as if stuck
            event.wait(0.05)
    assert len(asked) == 2  # asked, then (still not back) interrupted


FOREVER = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"


def test_a_stop_signal_while_finishing_cuts_a_statement_that_would_never_end():
    db = sqlite3.connect(":memory:")
    safety = threading.Timer(60, db.interrupt)  # if the signal did not get in: fail, not hang
    safety.start()
    try:
        with FinishWatch() as watch, pytest.raises(sqlite3.OperationalError), \
                watch.cuttable(db):
            later(0.2, signal.SIGINT)
            db.execute(FOREVER).fetchall()
        assert watch.signum == signal.SIGINT and safety.is_alive()
    finally:
        safety.cancel()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert db.execute("SELECT 1").fetchall() == [(1,)]  # the connection goes on


def test_a_stop_signal_before_the_cuttable_part_cuts_it_as_it_begins():
    db = sqlite3.connect(":memory:")
    with FinishWatch() as watch:
        os.kill(os.getpid(), signal.SIGTERM)  # while draining, say: noted only
        ran = []
        with pytest.raises(FinishingCut), watch.cuttable(db):
            ran.append(1)
    assert ran == [] and watch.signum == signal.SIGTERM


def test_a_second_stop_signal_while_finishing_ends_the_process_at_once():
    code = ("import os, signal, time\n"
            "from heaptrace.capture.signals import FinishWatch\n"
            "with FinishWatch():\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(60)\n")
    child = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert child.returncode == -signal.SIGTERM


def test_a_stop_signal_after_the_stop_is_told_as_late_once():
    # An impatient second Ctrl-C: it reaches the watcher (or waits, blocked, until the watch
    # ends); either way the finishing that follows hears of it.
    late: list = []
    with SignalWatch(stop_after=1, forward=False, late=late.append) as watch:
        os.kill(os.getpid(), signal.SIGINT)
        event = threading.Event()
        for _ in range(600):
            if watch.stop_signal is not None:
                break
            event.wait(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        event.wait(0.3)
        with pytest.raises(TracingStopped):
            watch.check()
    assert watch.stop_signal == signal.SIGINT and late == [signal.SIGTERM]


WATCHING = """
import sys
from heaptrace.capture.signals import SignalWatch, TracingStopped
command = sys.argv[1] == "run"  # run -- CMD: passed on to the target, the second one stops
try:
    with SignalWatch(stop_after=2 if command else 1, forward=command) as watch:
        watch.target = int(sys.argv[2]) if command else None
        print("watching", flush=True)
        sys.stdin.readline()  # stuck, as in a system call: a stop would interrupt it
        watch.check()
except TracingStopped as stop:
    print(stop)
else:
    print("still tracing")
"""


def stopped_and_continued(pid: int, times: int = 4) -> None:
    """As Ctrl-Z and fg do (or a debugger attaching): longer than the watcher's wait."""
    event = threading.Event()
    for _ in range(times):
        os.kill(pid, signal.SIGSTOP)
        event.wait(0.3)
        os.kill(pid, signal.SIGCONT)
        event.wait(0.2)


def watching(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WATCHING, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "watching\n", proc.communicate()
    return proc


def test_heaptrace_stopped_and_continued_is_no_signal():
    # CPython's sigtimedwait, interrupted by the stop after its timeout, returned a siginfo
    # the kernel never wrote: with -p its "signal 0" ended the tracing with "ValueError: 0 is
    # not a valid Signals" (an internal error, the recording cut short).
    proc = watching("pid")
    stopped_and_continued(proc.pid)
    out, err = proc.communicate("go\n", timeout=60)
    assert (out, err) == ("still tracing\n", "")


def test_a_signal_passed_on_is_not_received_again_after_a_stop():
    # The stale siginfo of the SIGTERM received before came back as a second SIGTERM: passed
    # on again, and the second one stops the tracing of a command.
    target = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys\n"
         "signal.signal(signal.SIGTERM, lambda *_: print('TERM', flush=True))\n"
         "print('ready', flush=True)\n"
         "while True: signal.pause()\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline() == "ready\n"
        proc = watching("run", str(target.pid))
        os.kill(proc.pid, signal.SIGTERM)
        assert target.stdout.readline() == "TERM\n"  # passed on (by the watcher: main is stuck)
        stopped_and_continued(proc.pid)
        out, err = proc.communicate("go\n", timeout=60)
        assert (out, err) == ("still tracing\n", "")
        os.kill(target.pid, signal.SIGKILL)
        assert target.stdout.read() == ""  # the one SIGTERM, not a second
    finally:
        target.kill()
        target.wait()


def test_a_number_that_names_no_signal_is_said_plainly():
    assert str(TracingStopped(0, None)) == "stopped by signal 0: the recording is finished"
