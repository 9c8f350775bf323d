"""`heaptrace export speedscope`: its JSON against the file format and `heaptrace flame
--folded` (the real speedscope app reads it in the browser tier)."""

from __future__ import annotations

import pytest

from tests.helpers import exportdata
from tests.helpers.exportdata import flame, speedscope


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return exportdata.write(str(tmp_path_factory.mktemp("export") / "rec.db"))


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


@pytest.mark.parametrize("options", [(), ("--event", "all"), ("--at", "peak"), ("--pid", "1")],
                         ids=" ".join)
def test_profiles_per_process_add_up_to_flame(recording, tmp_path, options):
    doc = speedscope(recording, tmp_path / "s.json", *options)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert stacks(doc) == flame(recording, *options)
    for profile in doc["profiles"]:
        assert profile["type"] == "sampled" and profile["unit"] == "bytes"
        assert len(profile["samples"]) == len(profile["weights"])
        assert profile["endValue"] - profile["startValue"] == sum(profile["weights"])


def test_one_profile_without_process_names(recording, tmp_path):
    doc = speedscope(recording, tmp_path / "s.json", "--no-process-names")
    assert len(doc["profiles"]) == 1
    assert stacks(doc, process_names=False) == flame(recording, "--no-process-names")


def test_processes_and_frames(recording, tmp_path):
    doc = speedscope(recording, tmp_path / "s.json", "--event", "all")
    names = [p["name"] for p in doc["profiles"]]
    assert names == ["sh (pid 1)", "worker (pid 2)", "prog (pid 1)"]  # in time order
    heaviest = max(doc["profiles"], key=lambda p: sum(p["weights"]))
    assert doc["profiles"][doc["activeProfileIndex"]] is heaviest
    files = {(f["name"], f.get("file")) for f in doc["shared"]["frames"]}
    assert ("mmap", "libc.so.6") in files and ("[no stack]", None) in files
    assert len(files) == len(doc["shared"]["frames"])


