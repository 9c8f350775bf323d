"""`heaptrace report` on a real eBPF recording of examples/grow (the pkgin story): the
download buffer is the top growth, it is not what was held at exit, and the process is
listed with the bytes it took, gave back and kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import heaptrace, histogram_json

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    subprocess.run(["make", "-s", "-C", str(EXAMPLES)], check=True)
    path = tmp_path_factory.mktemp("report") / "grow.db"
    heaptrace("run", "-o", str(path), "--", str(EXAMPLES / "grow"), check=True)
    return path


@pytest.fixture(scope="module")
def report(recording):
    proc = heaptrace("report", str(recording), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_top_growth_is_the_download_buffer_growing_by_mremap(report):
    top = report["growth"]["rows"][0]
    assert "download_package" in top["compact"] and top["compact"].endswith("> mremap")
    assert top["stack"][-1] == "mremap"
    assert any(f.startswith("download_package") for f in top["stack"])
    assert top["share"] > 0.5 and top["calls"] >= 1


def test_top_held_stack_is_not_the_freed_buffer(report):
    top = report["held"]["rows"][0]
    assert not top["compact"].endswith(("realloc > mremap", "realloc > mmap")), top
    held = {r["compact"]: r["bytes"] for r in report["held"]["rows"]}
    assert not any("download_package" in c and c.endswith("mremap") for c in held)
    assert any("index_entries" in c for c in held)  # the index is never freed


def test_the_process_and_the_exact_totals(report, recording):
    events = histogram_json(recording)["events"]
    taken = (events["brk"]["bytes"] + events["mmap"]["committed"]
             + events["mremap"]["committed"] + events["mprotect"]["bytes"])
    (proc,) = report["processes"]
    assert proc["name"] == "grow" and proc["pid"] > 0
    assert proc["taken"] == taken == report["growth_total"]
    # given back: committed pages only (the loader's unmapped file pages are not)
    released = sum(events[k]["released"] for k in ("brk", "mremap", "mprotect"))
    assert 48 << 20 <= proc["given"] <= events["munmap"]["bytes"] + released
    assert proc["held"] == report["held"]["total"] > 0
    rows = report["growth"]["rows"]
    assert sum(r["share"] for r in rows) + report["growth"]["other_share"] == pytest.approx(1)
    assert report["run"]["exit_code"] == 0 and report["run"]["complete"] is True


def test_the_text_report(recording):
    proc = heaptrace("report", str(recording), "--top", "3")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "download_package > buffer_append > realloc > mremap" in out
    assert "examples/grow" in out and "exit code 0" in out
    assert f"heaptrace flame --retained {recording}" in out


# --- a C++ program (tests/programs/templates.cpp) ------------------------------------------

FULL_GROW = "heaptest::pools::Pool<heaptest::Block<4096ul>, 64ul>::grow()"


@pytest.fixture(scope="module")
def templates(programs, tmp_path_factory):
    path = tmp_path_factory.mktemp("cxx") / "templates.db"
    heaptrace("run", "-o", str(path), "--", str(programs["templates"]), check=True)
    return path


def test_cxx_report_keeps_the_programs_own_frames(templates):
    """Template arguments and parameter lists are shortened, not the program's frames
    dropped: the vector's owner and both Pool instances are named, each row its own."""
    text = heaptrace("report", str(templates)).stdout
    section = text.split("Top stacks by bytes taken")[1].split("Top stacks by bytes still")[0]
    rows = [line for line in section.splitlines()[2:] if " > " in line]
    assert all(len(line) <= 100 for line in section.splitlines())
    assert not any(row.split("  ")[-1].startswith("...") for row in rows)
    vector = [r for r in rows if "Buffer<" in r]
    assert vector and "main > " in vector[0] and "reserve" in vector[0]
    pools = [r for r in rows if "Pool<" in r]
    assert len(pools) >= 2 and all("fill<" in r and "main > " in r for r in pools)
    assert len(set(rows)) == len(rows)
    doc = json.loads(heaptrace("report", str(templates), "--json").stdout)
    assert any(FULL_GROW in row["stack"] for row in doc["growth"]["rows"])
    assert any(FULL_GROW in row["compact"] for row in doc["growth"]["rows"])
