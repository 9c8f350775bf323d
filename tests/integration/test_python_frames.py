"""Python frames in real eBPF recordings of real interpreters: /usr/bin/python3 and every
pyenv interpreter of 3.8 or later on this machine. tests/programs/py_frames.py prints the
chain of each allocation site itself (traceback.extract_stack() on the allocating line);
the recording must hold a stack whose Python frames are that chain exactly: file, function
and line of every frame, from <module> down to the allocating call. The same when heaptrace
attaches to a running Python server (-p), when a shell execs Python, and with -X perf
(3.12+), whose trampolines the unwinder steps through: those stacks are whole."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from heaptrace.recording import Recording
from heaptrace.stacks.python.mixed import is_eval, is_python
from tests.helpers.cli import attached, heaptrace

PROGRAM = Path(__file__).resolve().parents[1] / "programs" / "py_frames.py"
SITES = {"nested", "method", "generator", "recursion", "except", "finally", "thread", "json",
         "zlib"}
Chain = Tuple[Tuple[str, str, int], ...]  # root first: (file, function, line)


def _version(python: str) -> Tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def interpreters() -> List[Tuple[str, Tuple[int, int]]]:
    """/usr/bin/python3 and pyenv's, with their versions; older than 3.8 is out of scope."""
    found = [p for p in ["/usr/bin/python3",
                         *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))]
             if os.access(p, os.X_OK)]
    return [(p, v) for p in found if (v := _version(p)) >= (3, 8)]


INTERPRETERS = interpreters()


def printed_sites(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def missing_chains(printed: List[dict], chains: Dict[int, List[Chain]]) -> List[tuple]:
    """The printed sites no recorded stack has the chain of."""
    wrong = []
    for site in printed:
        expected = tuple((f, name, line) for f, name, line in site["chain"])
        found = chains.get(site["pid"], [])
        if site["via"]:  # the frames of json's Python code follow the program's own
            ok = any(c[:len(expected)] == expected and library_frames_fit(site, c)
                     for c in found)
        else:
            ok = expected in found
        if not ok:
            near = [c for c in found if c[:2] == expected[:2]][:3]
            wrong.append((site["pid"], site["site"], expected, near))
    return wrong


def recorded_chains(path: Path) -> Dict[int, List[Chain]]:
    """pid -> the Python chain (root first) of every stack of the recording."""
    chains: Dict[int, List[Chain]] = {}
    with Recording(str(path)) as rec:
        pids = {s.id: s.pid for s in rec.stack_rows() if s.ips}
        for stack_id, frames in rec.stacks().items():
            chain = []
            for frame in reversed(frames):
                if is_python(frame):
                    name, where = frame.name.rsplit(" (", 1)
                    line = where.rstrip(")").rsplit(":")[-1]
                    chain.append((frame.module or "", name, int(line) if line.isdigit() else 0))
            chains.setdefault(pids[stack_id], []).append(tuple(chain))
    return chains


@pytest.fixture(scope="module", params=INTERPRETERS,
                ids=[f"{v[0]}.{v[1]}:{p}" for p, v in INTERPRETERS])
def run(request, tmp_path_factory):
    python, version = request.param
    tmp = tmp_path_factory.mktemp("py")
    sites, db = tmp / "sites.jsonl", tmp / "py.db"
    # Python frames begin once heaptrace has read the new image and taught the probe, about
    # 20 ms after the exec here, but seconds on a machine loaded by other test runs, when the
    # program's first sites would come first (docs/python.md): they wait half a second.
    proc = heaptrace("run", "-o", str(db), "--", python, str(PROGRAM), str(sites),
                     env={**os.environ, "PY_FRAMES_SETTLE": "0.5"})
    assert proc.returncode == 0, proc.stderr
    return version, printed_sites(sites), recorded_chains(db), db


def test_every_interpreter_of_this_machine_is_tested():
    versions = {v for _, v in INTERPRETERS}
    assert {(3, 11), (3, 12), (3, 13)} <= versions, INTERPRETERS


def test_each_site_ran_in_parent_and_child(run):
    _version, printed, _chains, _db = run
    pids = {s["pid"] for s in printed}
    assert len(pids) == 2  # the program and the python it started with subprocess
    for pid in pids:
        assert {s["site"] for s in printed if s["pid"] == pid} == SITES


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def calls_along(chain: Chain) -> bool:
    """Each frame's line, read from its file, calls the next frame's function."""
    for (file, _name, line), (_file, callee, _line) in zip(chain, chain[1:]):
        source = Path(file).read_text().splitlines()[line - 1]
        if f"{_short(callee)}(" not in source:
            return False
    return True


def library_frames_fit(site: dict, chain: Chain) -> bool:
    """The frames after the program's own: in the library's files, beginning with the
    functions the program named, each line calling the next (json's C encoder is called
    from a version-dependent place: encode's join, or iterencode)."""
    expected = len(site["chain"])
    extra = chain[expected:]
    names = [_short(name) for _, name, _ in extra]
    return (names[:len(site["via"])] == site["via"]
            and all("/json/" in file for file, _, _ in extra)
            and calls_along(chain[expected - 1:]))


def test_python_chains_equal_what_the_program_printed(run):
    _version, printed, chains, _db = run
    assert missing_chains(printed, chains) == []


def test_python_frames_sit_where_the_eval_loop_was(run):
    """In a whole stack every evaluation-loop frame gave way to Python frames: none left,
    and the allocator frames stay below the Python ones."""
    _version, _printed, _chains, db = run
    with Recording(str(db)) as rec:
        stacks = rec.stacks()
    merged = [s for s in stacks.values() if any(is_python(f) for f in s)]
    assert merged
    for frames in merged:
        assert not any(is_eval(f) for f in frames), [f.name for f in frames]
        leaf_python = next(i for i, f in enumerate(frames) if is_python(f))
        assert all(not is_python(f) for f in frames[:leaf_python])


@pytest.mark.parametrize("python,version", INTERPRETERS,
                         ids=[f"{v[0]}.{v[1]}:{p}" for p, v in INTERPRETERS])
def test_attaching_to_a_running_python_server_names_its_code(python, version, tmp_path):
    sites, db = tmp_path / "sites.jsonl", tmp_path / "attach.db"
    server = subprocess.Popen([python, str(PROGRAM), str(sites), "serve"])
    try:
        deadline = time.monotonic() + 30
        while not (sites.exists() and sites.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)  # serving: its code objects exist before heaptrace does
        proc = heaptrace("run", "-o", str(db), "-p", str(server.pid), "--duration", "3")
        assert proc.returncode == 0, proc.stderr
        printed = printed_sites(sites)
    finally:
        server.kill()
        server.wait()
    chains = recorded_chains(db)
    (expected,) = {tuple(tuple(f) for f in s["chain"]) for s in printed}
    assert [c for c in chains[server.pid] if c == expected], chains[server.pid][:5]


AFTER_IMPORTS = """
import importlib.util, os, sys, time
def grow_before():
    return [bytearray(1 << 20) for _ in range(8)]
def grow_after_imports():
    return [bytearray(1 << 20) for _ in range(8)]
go = sys.argv[1]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
keep = grow_before()
# C extensions mapped after heaptrace attached (dlopen: new executable mappings)
loaded = [m for m in ("_decimal", "_csv", "_bisect", "_lzma", "_bz2", "mmap")
          if (spec := importlib.util.find_spec(m)) and (spec.origin or "").endswith(".so")
          and __import__(m)]
print("loaded", len(loaded), flush=True)
keep2 = grow_after_imports()
time.sleep(0.5)
"""


def test_attached_python_keeps_its_frames_after_loading_extensions(tmp_path):
    """A process traced with -p has no known history of executable mappings, so each new
    one moves its unwinding rules on (a dlopen at a place used before would make them wrong);
    its Python frames follow its exec generation, not that, and survive the imports."""
    python = INTERPRETERS[-1][0]
    go, db = tmp_path / "go", tmp_path / "attach.db"
    server = subprocess.Popen([python, "-c", AFTER_IMPORTS, str(go)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        run = attached(str(db), server.pid)
        go.touch()
        assert int(server.stdout.readline().split()[1]) > 0  # some were extension files
        server.wait(timeout=60)
        err = run.stderr.read()
        assert run.wait(timeout=120) == 0, err
    finally:
        server.kill()
        server.wait()
    folded = heaptrace("flame", "--folded", str(db)).stdout
    assert "grow_before (<string>:" in folded
    assert "grow_after_imports (<string>:" in folded


def test_a_shell_that_execs_python(tmp_path):
    """The exec of an already traced process (sh) into Python: found, taught, named. Its
    frames are read once heaptrace has looked at the new image, which it sees only through
    the probe's records (up to a second on this loaded 2-core machine when the files are
    parsed the first time; docs/python.md): the program lets a second pass first."""
    sites, db = tmp_path / "sites.jsonl", tmp_path / "exec.db"
    python = INTERPRETERS[-1][0]
    proc = heaptrace("run", "-o", str(db), "--", "sh", "-c",
                     f'exec "{python}" "{PROGRAM}" "{sites}"',
                     env={**os.environ, "PY_FRAMES_SETTLE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert missing_chains(printed_sites(sites), recorded_chains(db)) == []


PERF = [(p, v) for p, v in INTERPRETERS if v >= (3, 12)]


@pytest.mark.parametrize("python,version", PERF, ids=[f"{v[0]}.{v[1]}" for _, v in PERF])
def test_perf_trampolines_keep_stacks_whole(python, version, tmp_path):
    """-X perf puts a trampoline without CFI or frame pointer under each Python call: the
    unwinder steps through them (CFA = rsp + 16), so the program's stacks reach _start or
    the thread's clone3, and the Python chains are still the printed ones. (Its child
    python runs without -X perf: subprocess does not pass -X options on.) With -X perf every
    Python call is a C call through a trampoline: the recursion 40 deep and the nested
    imports take 130-150 native frames and 20-30 KiB of stack, beyond the default 16 KiB copy
    of a stack seen first (docs/python.md), hence 32 KiB here."""
    sites, db = tmp_path / "sites.jsonl", tmp_path / "perf.db"
    proc = heaptrace("run", "-o", str(db), "--stack-bytes", "32768", "--", python, "-X", "perf",
                     str(PROGRAM), str(sites), env={**os.environ, "PY_FRAMES_SETTLE": "0.5"})
    assert proc.returncode == 0, proc.stderr
    printed = printed_sites(sites)
    assert missing_chains(printed, recorded_chains(db)) == []
    parent = printed[0]["pid"]
    with Recording(str(db)) as rec:
        pids = {s.id: s.pid for s in rec.stack_rows() if s.ips}
        ours = [s for sid, s in rec.stacks().items()
                if pids.get(sid) == parent and any(f.module == str(PROGRAM) for f in s)]
    assert ours and all(any(f.name.startswith("py::") for f in s) for s in ours)
    cut = [[f.name for f in s] for s in ours if s[-1].name not in ("_start", "clone3")]
    assert cut == []
