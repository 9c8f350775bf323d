"""`heaptrace export speedscope`: its JSON against the file format and `heaptrace flame
--folded`, then loaded in the real speedscope app (npm package) in headless Chromium, with
the frame names and sizes read off the page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from heaptrace.formats.folded import parse_folded
from tests.helpers import speedscope_app
from tests.unit import exportdata


def heaptrace(*args):
    proc = subprocess.run([sys.executable, "-c", "from heaptrace.cli import main; main()", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return exportdata.write(str(tmp_path_factory.mktemp("export") / "rec.db"))


def export(recording, out: Path, *options) -> dict:
    heaptrace("export", "speedscope", recording, *options, "-o", str(out))
    return json.loads(out.read_text())


def stacks(doc: dict, process_names: bool = True) -> dict:
    """Root-first names and bytes, the profile's process as the root frame, as flame has it."""
    frames = doc["shared"]["frames"]
    found: dict = {}
    for profile in doc["profiles"]:
        root = (profile["name"].split(" (pid ")[0],) if process_names else ()
        for sample, weight in zip(profile["samples"], profile["weights"]):
            key = root + tuple(frames[i]["name"] for i in sample)
            found[key] = found.get(key, 0) + weight
    return found


def flame(recording, *options) -> dict:
    return parse_folded(heaptrace("flame", recording, "--folded", *options).stdout.splitlines())


@pytest.mark.parametrize("options", [(), ("--event", "all"), ("--at", "peak"), ("--pid", "1")],
                         ids=" ".join)
def test_profiles_per_process_add_up_to_flame(recording, tmp_path, options):
    doc = export(recording, tmp_path / "s.json", *options)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert stacks(doc) == flame(recording, *options)
    for profile in doc["profiles"]:
        assert profile["type"] == "sampled" and profile["unit"] == "bytes"
        assert len(profile["samples"]) == len(profile["weights"])
        assert profile["endValue"] - profile["startValue"] == sum(profile["weights"])


def test_one_profile_without_process_names(recording, tmp_path):
    doc = export(recording, tmp_path / "s.json", "--no-process-names")
    assert len(doc["profiles"]) == 1
    assert stacks(doc, process_names=False) == flame(recording, "--no-process-names")


def test_processes_and_frames(recording, tmp_path):
    doc = export(recording, tmp_path / "s.json", "--event", "all")
    names = [p["name"] for p in doc["profiles"]]
    assert names == ["sh (pid 1)", "worker (pid 2)", "prog (pid 1)"]  # in time order
    heaviest = max(doc["profiles"], key=lambda p: sum(p["weights"]))
    assert doc["profiles"][doc["activeProfileIndex"]] is heaviest
    files = {(f["name"], f.get("file")) for f in doc["shared"]["frames"]}
    assert ("mmap", "libc.so.6") in files and ("[no stack]", None) in files
    assert len(files) == len(doc["shared"]["frames"])


@pytest.fixture(scope="module")
def browser():
    yield from speedscope_app.launch()


@pytest.fixture(scope="module")
def app():
    return speedscope_app.install()


def test_speedscope_shows_our_frames(recording, tmp_path, browser, app):
    out = tmp_path / "rec.speedscope.json"
    doc = export(recording, out, "--event", "all")
    viewer = speedscope_app.Viewer(browser, app, out, tmp_path)
    try:
        assert viewer.title().startswith("rec.db: brk+mmap+munmap+mremap")
        shown = viewer.profile_name()
        assert shown == doc["profiles"][doc["activeProfileIndex"]]["name"] == "prog (pid 1)"
        table = viewer.sandwich()
        expected = expected_sandwich(flame(recording, "--event", "all", "--pid", "1"), "prog")
        assert {name for name, _ in table} == set(expected)
        for (name, _file), (total, own) in table.items():
            assert close(total, expected[name][0]) and close(own, expected[name][1]), name
        assert {file for _, file in table} == {"prog", "libc.so.6", ""}
        assert viewer.profiles() == [(p["name"], p["endValue"]) for p in doc["profiles"]]
        viewer.previous_profile()
        assert viewer.profile_name() == "worker (pid 2)"
        assert {name for name, _ in viewer.sandwich()} == set(
            expected_sandwich(flame(recording, "--event", "all", "--pid", "2"), "worker"))
        assert viewer.errors == []
    finally:
        viewer.close()


def expected_sandwich(folded: dict, process: str) -> dict:
    """{name: (total, self)} of one process's stacks, the way speedscope's Sandwich view
    counts them: a frame's total counts each stack once, however often the name recurs."""
    found: dict = {}
    for stack, count in folded.items():
        if stack[0] != process:
            continue
        for name in set(stack[1:]):
            total, own = found.get(name, (0, 0))
            found[name] = (total + count, own + (count if name == stack[-1] else 0))
    return found


def close(shown: int, exact: int) -> bool:
    """speedscope prints sizes with two decimals: "18.00 KB"."""
    return abs(shown - exact) <= max(exact * 0.005, 1)
