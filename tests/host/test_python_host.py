"""Python frames against the real interpreters of this machine: the layout table against
each version's own headers (offsetof, built with gcc), the 3.13 debug offsets against the
table, the decoders (str and code objects, line tables) against live objects of every
interpreter (/usr/bin/python3 and pyenv's), finding the interpreter in real (stripped)
files and libpython where ld.so finds it (ldd), and the running kernel's BTF."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest

from heaptrace.backends.btf import Btf, fsbase_offset
from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.python.interpreter import find_interpreter
from heaptrace.stacks.python.layouts import TABLE, parse_debug_offsets
from heaptrace.stacks.python.tracker import libpython_of
from tests.helpers import TESTS

ROOT = TESTS.parent
PROGRAMS = TESTS / "programs"
OFFSETS_C = TESTS / "data" / "python" / "offsets.c"
PYENV = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*")))


def _version(python: str) -> tuple:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


PYTHONS = [p for p in ["/usr/bin/python3", *(f"{d}/bin/python3" for d in PYENV)]
           if os.access(p, os.X_OK) and _version(p) >= (3, 8)]
HEADERS = [d for d in [*glob.glob("/usr/include/python3.*"),
                       *(g for d in PYENV for g in glob.glob(f"{d}/include/python3.*"))]
           if os.path.isdir(f"{d}/internal") and not d.endswith(("d", "m"))]


def test_every_interpreter_and_header_set_is_found():
    assert len(PYTHONS) >= 3 and len(HEADERS) >= 3, (PYTHONS, HEADERS)


@pytest.mark.parametrize("include", HEADERS)
def test_the_layout_table_is_what_the_headers_say(include, tmp_path):
    gcc = shutil.which("gcc")
    assert gcc, "gcc builds the offsets program"
    exe = tmp_path / "offsets"
    subprocess.run([gcc, f"-I{include}", "-o", str(exe), str(OFFSETS_C)],
                   check=True, capture_output=True)
    measured = dict(line.split() for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())
    version = tuple(int(x) for x in Path(include).name[len("python"):].split("."))
    layout = dataclasses.asdict(TABLE[version])
    assert {k: layout[k] for k in measured} == {k: int(v) for k, v in measured.items()}


@pytest.mark.parametrize("python", PYTHONS)
def test_the_decoders_agree_with_each_interpreter_on_its_own_objects(python):
    out = subprocess.run([python, str(PROGRAMS / "py_decode_check.py"), str(ROOT)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["wrong"] == [] and result["checked"] > 1000


def _libpython(version: str) -> List[str]:
    pattern = f"~/.pyenv/versions/{version}.*/lib/libpython{version}.so.1.0"
    return glob.glob(os.path.expanduser(pattern))


def test_the_313_debug_offsets_are_the_table():
    libs = _libpython("3.13")
    assert libs, "pyenv's 3.13 is part of this machine's test set"
    elf = open_elf(libs[0])
    interp = find_interpreter(elf)
    assert interp is not None and interp.checked and interp.version == (3, 13)
    assert interp.layout == TABLE[(3, 13)]
    runtime = elf.symbol("_PyRuntime")
    offsets = parse_debug_offsets(elf.read(runtime[0], 1000))
    assert offsets["version"] >> 16 == 0x030D and offsets["runtime_state.size"] == runtime[1]


def test_a_stripped_interpreter_is_found_by_its_exported_runtime():
    elf = open_elf(os.path.realpath("/usr/bin/python3"))
    assert elf is not None and ".symtab" not in elf.sections  # Debian strips it
    interp = find_interpreter(elf)
    assert interp is not None and interp.checked and interp.layout is TABLE[interp.version]
    assert find_interpreter(open_elf("/lib/x86_64-linux-gnu/libc.so.6")) is None


@pytest.mark.parametrize("prefix", PYENV)
def test_libpython_is_found_where_ld_so_finds_it(prefix):
    program = open_elf(os.path.realpath(f"{prefix}/bin/python3"))
    found = libpython_of(program, os.getpid())
    loaded = subprocess.run(["ldd", program.path], capture_output=True, text=True).stdout
    line = next(x for x in loaded.splitlines() if "libpython" in x)
    assert found == os.path.realpath(line.split("=>")[1].split("(")[0].strip())


def test_btf_offsets_of_the_running_kernel():
    with open("/sys/kernel/btf/vmlinux", "rb") as fh:
        btf = Btf(fh.read())
    assert btf.offset("list_head", ("next",)) == 0
    assert btf.offset("list_head", ("prev",)) == 8
    assert btf.offset("task_struct", ("no_such_member",)) is None
    assert fsbase_offset() == btf.offset("task_struct", ("thread", "fsbase")) > 0
