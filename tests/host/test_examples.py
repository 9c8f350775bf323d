"""The four stories' example programs (examples/, docs/examples/) do what their pages say, run
on their own (no heaptrace): peak RSS as the kernel counts it (getrusage's ru_maxrss, read by GNU
time: a child of pytest itself would inherit pytest's own peak, which exec keeps), and the
programs' own readings of /proc/self/statm, /proc/self/status and smaps_rollup."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
BIN = EXAMPLES / "build" / "bin"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
MIB = 1024  # in KiB


@pytest.fixture(scope="module", autouse=True)
def built():
    subprocess.run(["make", "-s", "-C", str(EXAMPLES)], check=True)


def run(argv: list[str], env: dict | None = None) -> tuple[str, int]:
    """The program's stdout and its peak RSS in KiB, as the kernel counted it."""
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, values("maxrss=", proc.stderr)["maxrss"]


def values(line_start: str, text: str) -> dict[str, int]:
    line = next(ln for ln in text.splitlines() if ln.startswith(line_start))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def test_pkgin_buffered_download_peaks_high_and_streaming_does_not():
    before, before_peak = run([str(EXAMPLES / "grow")])
    after, after_peak = run([str(EXAMPLES / "grow"), "--stream"])
    assert before == after == "downloaded 50331648 bytes, indexed pkg-0..pkg-19999\n"
    assert before_peak > 48 * MIB  # the whole 48 MiB download was resident at once
    assert after_peak < 24 * MIB


def test_venice_rss_stays_high_with_glibc_and_comes_back_with_jemalloc():
    assert os.path.exists(JEMALLOC), "libjemalloc2 is missing: scripts/setup-system.sh installs it"
    glibc, glibc_peak = run([str(BIN / "venice")])
    jemalloc, jemalloc_peak = run([str(BIN / "venice")], env={"LD_PRELOAD": JEMALLOC})
    # jemalloc really was loaded: glibc's malloc never purges, so the two would agree.
    g, j = values("rss night", glibc), values("rss night", jemalloc)
    assert g["sessions"] == j["sessions"] == 4 * 4 * 256 // 32
    # Both peaked at tens of MiB (4 threads x 256 buffers of 16-96 KiB per wave) ...
    assert glibc_peak > 40 * MIB and jemalloc_peak > 40 * MIB
    # ... glibc still holds most of its peak at night, jemalloc gave most of it back.
    assert g["kib"] > 0.7 * glibc_peak
    assert j["kib"] < 0.4 * jemalloc_peak
    assert j["kib"] < 0.5 * g["kib"]


def test_python_list_of_bytes_keeps_its_peak_and_the_ring_does_not():
    script = str(EXAMPLES / "audiostream.py")
    listed, _ = run(["/usr/bin/python3", script, "--list"])
    ring, _ = run(["/usr/bin/python3", script, "--ring"])
    lp, ln = values("rss peak", listed)["kib"], values("rss night", listed)
    rp, rn = values("rss peak", ring)["kib"], values("rss night", ring)
    assert ln["radios"] == rn["radios"] == 30
    # 240 radios x 128 KiB of audio at the peak either way
    assert lp > 30 * MIB and rp > 30 * MIB
    assert ln["kib"] > 0.9 * lp  # the list's freed chunks never leave the heap
    assert rn["kib"] < 0.5 * rp  # the rings of the stopped radios went back whole


def test_liquidsoap_rss_mixes_private_heap_sparse_file_and_shared_pages(tmp_path):
    library = tmp_path / "library.data"
    out, _ = run([str(BIN / "liquidsoap"), str(library)])
    assert library.stat().st_size == 64 << 20
    rss, rollup = values("rss ", out), values("rollup ", out)
    assert rss["total"] == rss["anon"] + rss["file"] + rss["shmem"]
    assert 24 * MIB <= rss["anon"] < 28 * MIB  # the decoded frames (and a little more)
    assert rss["shmem"] == 8 * MIB  # the buffer shared with the encoder child
    # One page per MiB of the 64 MiB file was read; fault-around maps 16 cached pages each:
    # 4 MiB of the file, plus the program's and libc's own file pages.
    assert 4 * MIB <= rss["file"] < 12 * MIB
    # smaps_rollup agrees: the shared buffer is shared and dirty (the child still maps it);
    # the heap and the file's pages are the process's alone (the file, just written, may still
    # be dirty in the page cache, so they are private dirty or clean).
    assert abs(rollup["rss"] - rss["total"]) < 2 * MIB
    assert rollup["shared_dirty"] >= 8 * MIB
    assert rollup["private_dirty"] + rollup["private_clean"] >= 24 * MIB + 4 * MIB - 512


def test_liquidsoap_without_a_path_is_a_usage_error():
    proc = subprocess.run([str(BIN / "liquidsoap")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: liquidsoap PATH")
