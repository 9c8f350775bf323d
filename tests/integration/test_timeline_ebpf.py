"""`heaptrace timeline` on a real eBPF recording of a program that grows, frees and grows
again with pauses between: the held bytes rise, fall and rise, and so does the exact RSS."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import heaptrace, histogram_json

MIB = 1 << 20
PHASES = """
import time
time.sleep(0.3)
block = b"x" * (20 << 20)   # written, so RSS grows as well
time.sleep(0.6)
del block
time.sleep(0.6)
block = b"y" * (20 << 20)
time.sleep(0.6)
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "phases.db"
    proc = heaptrace("run", "-o", str(path), "--", "/usr/bin/python3", "-c", PHASES)
    assert proc.returncode == 0, proc.stderr
    return path


def timeline(path, *args: str) -> dict:
    proc = heaptrace("timeline", str(path), "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def first_after(values: list, start: int, test) -> int:
    return next(i for i in range(start, len(values)) if test(values[i]))


def test_held_rises_falls_and_rises(recording):
    held = [b["held"] for b in timeline(recording, "--interval", "0.1")["buckets"]]
    rise = first_after(held, 0, lambda h: h >= held[0] + 19 * MIB)
    fall = first_after(held, rise, lambda h: h <= held[rise] - 19 * MIB)
    again = first_after(held, fall, lambda h: h >= held[fall] + 19 * MIB)
    # the sleeps put the three phases at least 0.6 s (6 buckets) apart
    assert fall - rise >= 5 and again - fall >= 5, held


def test_rss_follows_the_blocks(recording):
    data = timeline(recording, "--interval", "0.1")
    rss = [b["rss"] for b in data["buckets"] if b["rss"] is not None]
    assert len(rss) >= 20  # exact from the start to the end of a 2 s run
    assert data["peak_rss"] == max(rss) >= rss[0] + 20 * MIB
    # each block is 20 MiB; the interpreter's own pages move a little meanwhile
    rise = first_after(rss, 0, lambda r: r >= rss[0] + 16 * MIB)
    top = rise  # a bucket may end while the block is being written: its top is further on
    while top + 1 < len(rss) and rss[top + 1] >= rss[top]:
        top += 1
    fall = first_after(rss, top, lambda r: r <= rss[top] - 16 * MIB)  # `del block`
    first_after(rss, fall, lambda r: r >= rss[fall] + 16 * MIB)  # the second block
    assert data["resident"] >= 40 * MIB  # each block's pages became resident


def test_buckets_add_up_to_the_exact_totals(recording):
    data, hist = timeline(recording), histogram_json(recording)
    events = hist["events"]
    grown = (events["brk"]["bytes"] + events["mmap"]["committed"]
             + events["mremap"]["committed"] + events["mprotect"]["bytes"])
    shrunk = sum(events[k]["released"] for k in ("brk", "mremap") if k in events)
    assert sum(b["taken"] for b in data["buckets"]) == data["taken"] == grown
    # given back: committed pages only, page by page (unmapping the loader's file pages or
    # Python's reserved ones gives nothing back), the freed 20 MiB block among them
    assert sum(b["given"] for b in data["buckets"]) == data["given"] >= 20 * MIB
    assert data["given"] <= (shrunk + events["munmap"]["bytes"] + events["madvise"]["bytes"]
                             + events["mprotect"]["released"])


def test_held_at_exit_is_the_flame_retained_total(recording):
    proc = heaptrace("flame", str(recording), "--retained", "--folded")
    assert proc.returncode == 0, proc.stderr
    total = sum(int(line.rsplit(" ", 1)[1]) for line in proc.stdout.splitlines())
    assert timeline(recording)["held_at_exit"] == total


def test_the_table_and_the_chart(recording):
    table = heaptrace("timeline", str(recording))
    assert table.returncode == 0, table.stderr
    assert "most growth at" in table.stdout and "peak RSS" in table.stdout
    svg = heaptrace("timeline", str(recording), "--svg")
    assert svg.returncode == 0 and 'class="rss"' in svg.stdout
