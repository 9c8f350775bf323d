"""The signal watcher: signals reach heaptrace whatever its main thread is doing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from heaptrace.capture.signals import SignalWatch, TracingStopped


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
