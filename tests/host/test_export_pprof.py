"""`heaptrace export pprof` through the real command line, decoded without heaptrace's
encoder: by protoc with the published profile.proto, and by `go tool pprof`. Its stacks and
totals must be `heaptrace flame --folded`'s, its values per kind the recording's."""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heaptrace.events import GROWTH_KINDS
from heaptrace.render.pprof import LocationField, ProfileField, SampleField
from heaptrace.render.protobuf import delimited, integer, message, packed
from tests.helpers import exportdata, pprof_oracle
from tests.helpers.cli import heaptrace
from tests.helpers.exportdata import flame

GROWTH = GROWTH_KINDS  # brk, mmap, mremap, mprotect


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return exportdata.write(str(tmp_path_factory.mktemp("export") / "rec.db"))


def export(recording, tmp_path, *options) -> dict:
    out = tmp_path / "out.pb.gz"
    proc = heaptrace("export", "pprof", recording, *options, "-o", str(out), check=True)
    assert proc.stdout == ""  # results go to the file, the summary to stderr
    assert proc.stderr.startswith(f"Wrote {out}: ")
    return pprof_oracle.decode(str(out))


SELECTIONS = [(), ("--event", "mmap"), ("--event", "all"), ("--event", "madvise"),
              ("--retained",), ("--at", "peak"), ("--retained", "--event", "brk"),
              ("--no-process-names",), ("--pid", "2"), ("--from", "0.025", "--to", "0.05"),
              ("--at", "peak", "--no-process-names", "--from", "0.011")]


@pytest.mark.parametrize("options", SELECTIONS, ids=" ".join)
def test_stacks_and_totals_are_flames(recording, tmp_path, options):
    profile = export(recording, tmp_path, *options)
    assert pprof_oracle.stacks(profile) == flame(recording, *options)
    assert profile["default_sample_type"] == profile["sample_type"][0][0]


def test_sample_types_per_kind_with_the_recordings_calls_and_bytes(recording, tmp_path):
    profile = export(recording, tmp_path)
    assert profile["sample_type"] == [("growth", "bytes")] + [
        (f"{k}_{what}", unit) for k in GROWTH for what, unit in (("bytes", "bytes"),
                                                                 ("calls", "count"))]
    sums = pprof_oracle.totals(profile)
    truth = exportdata.truth(GROWTH)
    for kind, (calls, nbytes) in truth.items():
        assert (sums[f"{kind}_calls"], sums[f"{kind}_bytes"]) == (calls, nbytes)
    assert sums["growth"] == sum(nbytes for _, nbytes in truth.values())
    one = export(recording, tmp_path, "--event", "munmap")
    assert one["sample_type"] == [("munmap_bytes", "bytes"), ("munmap_calls", "count")]
    assert pprof_oracle.totals(one) == dict(zip(("munmap_calls", "munmap_bytes"),
                                                exportdata.truth(("munmap",))["munmap"]))


def test_one_sample_per_process_image_and_stack_with_labels(recording, tmp_path):
    profile = export(recording, tmp_path, "--event", "all")
    keys = Counter((s["label"]["pid"], s["label"]["process"], pprof_oracle.frames(profile, s))
                   for s in profile["sample"])
    assert max(keys.values()) == 1
    # "common" ran before the exec (as sh) and after it (as prog): two samples
    common = {(pid, name) for pid, name, stack in keys if "common" in stack}
    assert common == {(1, "sh"), (1, "prog")}
    for _pid, name, stack in keys:
        assert stack[0] == name  # the process is the root frame, as in flame
    assert {(pid, name) for pid, name, _ in keys} == {(1, "sh"), (1, "prog"), (2, "worker")}
    no_stack = [s for s in keys if s[2][1:] == ("[no stack]",)]
    assert {s[:2] for s in no_stack} == {(1, "prog")}


def test_locations_keep_addresses_mappings_and_build_ids(recording, tmp_path):
    profile = export(recording, tmp_path, "--event", "all")
    mappings = {m["id"]: m for m in profile["mapping"]}
    by_file = {m["filename"]: m for m in mappings.values()}
    assert set(by_file) == {exportdata.PROG[0], exportdata.LIBC[0], exportdata.SH[0]}
    for path, start, end, offset, build_id in (exportdata.PROG, exportdata.LIBC, exportdata.SH):
        m = by_file[path]
        assert (m["memory_start"], m["memory_limit"], m.get("file_offset", 0),
                m["build_id"], m["has_functions"]) == (start, end, offset, build_id, True)
    assert profile["mapping"][0]["filename"] == exportdata.PROG[0]  # the program comes first
    functions = {f["id"]: f["name"] for f in profile["function"]}
    placed = set()
    for loc in profile["location"]:
        name = functions[loc["line"][0]["function_id"]]
        if "mapping_id" in loc:
            m = mappings[loc["mapping_id"]]
            assert m["memory_start"] <= loc["address"] < m["memory_limit"]
            placed.add((name, loc["address"]))
        else:  # only the synthetic frames have no address
            assert "address" not in loc and name in ("sh", "prog", "worker", "[no stack]")
    # every frame once, with its name (the one without a symbol keeps heaptrace's)
    assert placed == {(f.name, f.addr) for s in exportdata.STACKS.values() for f in s}
    assert ("prog+0x350", exportdata.PROG[1] + 0x350) in placed


def test_held_values(recording, tmp_path):
    profile = export(recording, tmp_path, "--retained")
    assert [t for t, _ in profile["sample_type"]] == [
        "held", *(f"{k}_held" for k in GROWTH), "held_calls"]
    sums = pprof_oracle.totals(profile)
    assert sums["held"] == sum(flame(recording, "--retained").values())
    assert sums["held"] == sums["brk_held"] + sums["mmap_held"] + sums["mremap_held"]
    # still held at exit: sh's brk and mmap, prog's load (moved by mremap), heap, the
    # unstacked page and common; the worker gave its mapping back
    assert sums["held_calls"] == 7
    assert not any(s["label"]["process"] == "worker" for s in profile["sample"])


def test_go_tool_pprof_reads_the_same_values(recording, tmp_path):
    out = tmp_path / "p.pb.gz"
    heaptrace("export", "pprof", recording, "--event", "all", "-o", str(out), check=True)
    profile = pprof_oracle.decode(str(out))
    names, values = pprof_oracle.go_pprof_raw(str(out), tmp_path)
    assert names == [t for t, _ in profile["sample_type"]]
    assert Counter(map(tuple, values)) == Counter(tuple(s["value"]) for s in profile["sample"])


def test_wall_clock_and_comment(recording, tmp_path):
    profile = export(recording, tmp_path, "--pid", "2")
    assert profile["time_nanos"] == 1_700_000_000_500_000_000
    assert profile["duration_nanos"] == 100_000_000
    assert profile["comment"] == [
        "committed growth (brk+mmap+mremap+mprotect) of pid 2: 16.0 KiB in 1 stacks"]


def test_stdout_when_piped_and_the_same_bytes_each_time(recording, tmp_path):
    first = heaptrace("export", "pprof", recording, check=True, text=False).stdout
    out = tmp_path / "p.pb.gz"
    heaptrace("export", "pprof", recording, "-o", str(out), check=True)
    assert first == out.read_bytes() and first[:2] == b"\x1f\x8b"


def test_an_empty_recording_is_an_empty_profile(tmp_path):
    from tests.helpers.synth import Synth

    Synth(str(tmp_path / "empty.db")).close()
    profile = export(str(tmp_path / "empty.db"), tmp_path)
    assert "sample" not in profile and profile["sample_type"][0] == ("growth", "bytes")


def test_bad_input_is_one_line(recording, tmp_path):
    folded = tmp_path / "x.folded"
    folded.write_text("main;malloc 10\n")
    for args in (["export", "pprof", str(folded), "-o", str(tmp_path / "o")],
                 ["export", "pprof", str(tmp_path / "missing.db"), "-o", str(tmp_path / "o")],
                 ["export", "pprof", recording, "-o", recording],
                 ["export", "pprof", recording, "-o", str(tmp_path)],
                 ["export", "pprof", recording, "--retained", "--event", "munmap"],
                 ["export", "pprof", recording, "-o", str(tmp_path / "no" / "dir" / "o")],
                 ["export", "svg", recording]):
        proc = heaptrace(*args, check=False)
        err = proc.stderr
        assert proc.returncode != 0 and "Traceback" not in err, err
        errors = [line for line in err.splitlines() if line.lower().startswith(
            ("error:", "heaptrace: error:"))]
        assert len(errors) == 1, err
    assert not (tmp_path / "o").exists()
    assert "heaptrace import folded" in heaptrace(
        "export", "pprof", str(folded), check=False).stderr
    assert Path(recording).read_bytes()[:16] == b"SQLite format 3\x00"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=5),
       st.integers(0, (1 << 64) - 1), st.integers(-(1 << 63), (1 << 63) - 1),
       st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_wire_format_reads_back_with_protoc(values, address, when, text):
    """The encoder's varints (int64 negatives included), packed lists, nested messages and
    strings, as protoc reads them with profile.proto."""
    raw = b"".join([
        message(ProfileField.SAMPLE, [packed(SampleField.VALUE, values)]),
        message(ProfileField.LOCATION, [integer(LocationField.ID, 1),
                                        integer(LocationField.ADDRESS, address)]),
        integer(ProfileField.TIME_NANOS, when),
        delimited(ProfileField.STRING_TABLE, b""),
        delimited(ProfileField.STRING_TABLE, text.encode("utf-8"))])
    path = Path(tempfile.mkdtemp()) / "p.pb.gz"
    path.write_bytes(gzip.compress(raw))
    decoded = pprof_oracle.parse_text(pprof_oracle.protoc_text(str(path)))
    assert decoded["sample"][0].get("value", []) == values
    assert decoded["location"][0].get("address", 0) == address
    assert decoded.get("time_nanos", 0) == when
    assert decoded["string_table"] == ["", text]
