"""`heaptrace export` on real eBPF recordings of compiled programs: the pprof profile, decoded
by protoc with the published profile.proto, has strace's calls and bytes per kind, flame's
stacks, and the build-ids readelf reads from the binaries; `go tool pprof` reads the same
values; the speedscope file shows the program's frames in the real speedscope app."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from heaptrace.formats.folded import parse_folded
from tests.helpers import pprof_oracle, speedscope_app
from tests.helpers.cli import argv, heaptrace
from tests.helpers.strace_oracle import trace

KINDS = ("brk", "mmap", "munmap", "mremap", "madvise")


@pytest.fixture(scope="module")
def fork_exec(programs, tmp_path_factory):
    """fork_exec (a forked child that execs exec_target) recorded under setarch -R, and
    strace's totals for the same command."""
    root = tmp_path_factory.mktemp("export")
    cmd = [str(programs["fork_exec"])]
    proc = subprocess.run(["setarch", "-R", *argv("run", "-o", str(root / "r.db"), "--", *cmd)],
                          capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "r.db", trace(cmd, cwd=str(root)).totals


def export(db: Path, fmt: str, out: Path, *options: str) -> Path:
    proc = heaptrace("export", fmt, str(db), *options, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def flame(db: Path, *options: str) -> dict:
    proc = heaptrace("flame", str(db), "--folded", *options)
    assert proc.returncode == 0, proc.stderr
    return parse_folded(proc.stdout.splitlines())


def test_pprof_calls_and_bytes_per_kind_are_straces(fork_exec, tmp_path):
    db, strace_totals = fork_exec
    profile = pprof_oracle.decode(str(export(db, "pprof", tmp_path / "p.pb.gz", "--event", "all")))
    sums = pprof_oracle.totals(profile)
    for kind in KINDS:
        assert sums[f"{kind}_calls"] == strace_totals[kind]["calls"], kind
        assert sums[f"{kind}_bytes"] == strace_totals[kind]["bytes"], kind
    assert {s["label"]["process"] for s in profile["sample"]} >= {"fork_exec", "exec_target"}


@pytest.mark.parametrize("options", [(), ("--event", "all"), ("--retained",), ("--at", "peak")],
                         ids=" ".join)
def test_pprof_stacks_are_flames(fork_exec, tmp_path, options):
    db, _ = fork_exec
    profile = pprof_oracle.decode(str(export(db, "pprof", tmp_path / "p.pb.gz", *options)))
    stacks = pprof_oracle.stacks(profile)
    assert stacks == flame(db, *options)
    assert any("main" in stack for stack in stacks)


def test_pprof_mappings_carry_the_binaries_build_ids(fork_exec, programs, tmp_path):
    db, _ = fork_exec
    profile = pprof_oracle.decode(str(export(db, "pprof", tmp_path / "p.pb.gz")))
    by_file = {m["filename"]: m for m in profile["mapping"]}
    for name in ("fork_exec", "exec_target"):
        path = str(programs[name])
        assert by_file[path]["build_id"] == readelf_build_id(path), name
    libc = [m for f, m in by_file.items() if f.endswith("/libc.so.6")]
    assert libc and libc[0]["build_id"] == readelf_build_id(libc[0]["filename"])
    assert profile["mapping"][0]["filename"] == str(programs["fork_exec"])


def test_pprof_lines_are_the_call_sites_in_the_programs_source(fork_exec, programs, tmp_path):
    """Each of the programs' frames has its file and line (built with -g); the line of a
    caller is the call: its text names the function the next frame is in."""
    db, _ = fork_exec
    profile = pprof_oracle.decode(str(export(db, "pprof", tmp_path / "p.pb.gz", "--event", "all")))
    functions = {f["id"]: f for f in profile["function"]}
    locations = {loc["id"]: loc for loc in profile["location"]}
    sources = Path(__file__).resolve().parent.parent / "programs"
    checked = 0
    for sample in profile["sample"]:
        lines = [locations[i]["line"][0] for i in sample["location_id"]]  # leaf first
        for callee, caller in zip(lines, lines[1:]):
            where = functions[caller["function_id"]]
            if not where.get("filename", "").startswith(str(sources)):
                continue
            text = Path(where["filename"]).read_text().splitlines()[caller["line"] - 1]
            name = functions[callee["function_id"]]["name"].split(".")[0]
            assert name in text, (where["name"], caller["line"], text, name)
            checked += 1
    assert checked >= 10
    mine = [m for m in profile["mapping"] if m["filename"] == str(programs["fork_exec"])]
    assert mine[0]["has_filenames"] and mine[0]["has_line_numbers"]


def test_go_tool_pprof_reads_it(fork_exec, tmp_path):
    db, _ = fork_exec
    out = export(db, "pprof", tmp_path / "p.pb.gz", "--event", "all")
    profile = pprof_oracle.decode(str(out))
    names, values = pprof_oracle.go_pprof_raw(str(out), tmp_path)
    assert names == [t for t, _ in profile["sample_type"]]
    assert sorted(map(tuple, values)) == sorted(tuple(s["value"]) for s in profile["sample"])


@pytest.fixture(scope="module")
def browser():
    yield from speedscope_app.launch()


def test_speedscope_shows_the_programs_frames(fork_exec, tmp_path, browser):
    db, _ = fork_exec
    out = export(db, "speedscope", tmp_path / "r.speedscope.json")
    viewer = speedscope_app.Viewer(browser, speedscope_app.install(), out, tmp_path)
    try:
        shown = viewer.profile_name()
        process, pid = re.fullmatch(r"(.+) \(pid (\d+)\)", shown).groups()
        folded = flame(db, "--pid", pid)
        names = {name for stack in folded if stack[0] == process for name in stack[1:]}
        table = viewer.sandwich()
        assert {name for name, _ in table} == names
        assert {"main", "malloc"} <= names
        assert viewer.errors == []
    finally:
        viewer.close()


def readelf_build_id(path: str) -> str:
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                         check=True).stdout
    return re.search(r"Build ID: ([0-9a-f]+)", out).group(1)
