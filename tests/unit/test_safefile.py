"""Files others control: a FIFO, a link to /dev/zero, a file of another user, a file system
that hangs in open(), a file bigger than allowed. None of them blocks, bloats or is trusted."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import Callable, TypeVar

import pytest

from heaptrace.stacks import safefile
from heaptrace.stacks.elf import open_elf, open_mapped
from heaptrace.stacks.execimage import program_path
from heaptrace.stacks.safefile import open_regular, read_regular
from heaptrace.stacks.symbols import perf_map_owners, read_perf_map

T = TypeVar("T")


def promptly(call: Callable[[], T], seconds: float = 10.0) -> T:
    """call(), which must return within `seconds` (a blocking open would never return)."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"
    return result[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "perf-1.map"
    os.mkfifo(path)
    return str(path)


@pytest.fixture
def zero_link(tmp_path):
    path = tmp_path / "perf-1.map"
    path.symlink_to("/dev/zero")
    return str(path)


def test_a_fifo_is_refused_without_blocking(fifo):
    assert promptly(lambda: open_regular(fifo, 1 << 20)) is None
    assert promptly(lambda: read_perf_map(fifo, {os.geteuid()}).names) == []
    assert promptly(lambda: open_elf(fifo)) is None
    assert promptly(lambda: program_path(fifo)) == fifo


def test_a_link_to_dev_zero_is_refused(zero_link):
    assert read_regular(zero_link, 1 << 20, nofollow=True) is None
    assert promptly(lambda: read_perf_map(zero_link, {os.geteuid()}).names) == []
    assert promptly(lambda: open_elf(zero_link)) is None  # followed, but a device


def test_a_perf_map_of_another_user_is_not_read(tmp_path):
    path = tmp_path / "perf-7.map"
    path.write_text("1000 10 planted\n")
    assert read_perf_map(str(path), {os.geteuid()}).names == ["planted"]
    assert read_perf_map(str(path), {os.geteuid() + 1}).names == []
    # perf's rule: root and the process's user; that user when known, else heaptrace's own.
    assert perf_map_owners(7, {7: 1000}) == {0, 1000}
    assert perf_map_owners(8, {7: 1000}) == {0, os.geteuid()}


def test_a_perf_map_through_a_link_is_not_read(tmp_path):
    real = tmp_path / "real.map"
    real.write_text("1000 10 linked\n")
    link = tmp_path / "perf-7.map"
    link.symlink_to(real)
    assert read_perf_map(str(link), {os.geteuid()}).names == []


def test_files_over_the_size_bound_are_refused(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 4096)
    assert read_regular(str(path), 4096) == b"x" * 4096
    assert read_regular(str(path), 4095) is None
    assert open_regular(str(path), 4095) is None


def test_an_open_that_hangs_is_given_up_after_the_time_bound(tmp_path, monkeypatch):
    path = tmp_path / "lib.so"
    path.write_bytes(b"")
    real_open, released = os.open, threading.Event()

    def hung_open(name, flags, *args):  # a FUSE or NFS file system that never answers
        released.wait(30)
        return real_open(name, flags, *args)

    monkeypatch.setattr(safefile.os, "open", hung_open)
    start = time.monotonic()
    assert open_regular(str(path), 1 << 20, timeout=0.2) is None
    assert time.monotonic() - start < 5
    released.set()


def test_a_relative_path_is_never_opened_in_heaptraces_cwd(tmp_path, monkeypatch):
    shutil.copy(sys.executable, tmp_path / "libfake.so")  # an ELF file, right here
    monkeypatch.chdir(tmp_path)
    assert open_elf("libfake.so") is not None
    assert open_mapped("libfake.so", None) is None  # relative: the target's cwd, not ours
