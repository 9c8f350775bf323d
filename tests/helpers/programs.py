"""Compile the test programs (tests/programs/*.c, *.cpp) into tests/programs/bin/.

A program is rebuilt only when its source, common.h or this file is newer than the
binary. Flags: `-D_GNU_SOURCE -g -Wall -Wextra -Werror -O0`, plus those of a line
` * build: FLAGS` in the source's top comment (e.g. `-O2 -fomit-frame-pointer -pthread`);
an -O flag there replaces -O0. Run it directly to build everything and print the paths:

    python3 -m tests.helpers.programs
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

from tests.helpers import TESTS

HERE = TESTS / "programs"
BIN = HERE / "bin"
COMPILERS = {".c": ["gcc", "-std=gnu11"], ".cpp": ["g++", "-std=gnu++17"]}
BASE_FLAGS = ["-D_GNU_SOURCE", "-g", "-Wall", "-Wextra", "-Werror"]
BUILD_LINE = re.compile(r"^\s*\*\s*build:\s*(.*)$", re.MULTILINE)


class BuildError(RuntimeError):
    """A test program failed to compile (the compiler's output is the message)."""


def sources() -> Dict[str, Path]:
    """Every test program by name (its file name without extension)."""
    found = [p for p in sorted(HERE.iterdir()) if p.suffix in COMPILERS]
    return {p.stem: p for p in found}


def flags(source: Path) -> List[str]:
    """Compiler flags for one source: the base flags plus its `build:` line."""
    match = BUILD_LINE.search(source.read_text())
    extra = shlex.split(match.group(1)) if match else []
    optimize = [] if any(f.startswith("-O") for f in extra) else ["-O0"]
    return BASE_FLAGS + optimize + extra


def _stale(binary: Path, source: Path) -> bool:
    if not binary.exists():
        return True
    inputs = [source, HERE / "common.h", Path(__file__)]
    return binary.stat().st_mtime < max(p.stat().st_mtime for p in inputs)


def _compile(source: Path, binary: Path) -> None:
    # Compile to a temporary name and rename, so concurrent builds never see half a file.
    fd, tmp = tempfile.mkstemp(prefix=f".{binary.name}.", dir=binary.parent)
    os.close(fd)
    cmd = [*COMPILERS[source.suffix], *flags(source), "-o", tmp, str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise BuildError(f"{shlex.join(cmd)}\n{proc.stderr}")
    os.replace(tmp, binary)


def build(name: str, out_dir: Path = BIN) -> Path:
    """The path of program `name`, compiled first if missing or out of date."""
    source = sources()[name]
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / name
    if _stale(binary, source):
        _compile(source, binary)
    return binary


# Programs the integration tests compile themselves, each with its own flags and file names
# (a shared library built twice for one address, names holding terminal escapes).
OWN = TESTS / "integration" / "programs"


def compile_own(source: str, out: Path, *extra: str) -> Path:
    """Compile tests/integration/programs/SOURCE to `out` with the base flags, -O1 and
    `extra` (a library: -shared -fPIC; a later -O wins); returns `out`."""
    cmd = [*COMPILERS[Path(source).suffix], *BASE_FLAGS, "-O1", *extra, "-o", str(out),
           str(OWN / source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{shlex.join(cmd)}\n{proc.stderr}")
    return out


def build_all(out_dir: Path = BIN) -> Dict[str, Path]:
    """Every program, compiled where needed: {name: path}."""
    return {name: build(name, out_dir) for name in sources()}


def main() -> int:
    try:
        built = build_all()
    except BuildError as e:
        print(e, file=sys.stderr)
        return 1
    for path in built.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
