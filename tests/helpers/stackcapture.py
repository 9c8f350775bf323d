"""Rebuilds the stack fixtures of tests/data/stacks: compiles the programs of its src/ into
bin/ and runs each under gdb (its gdb_capture.py) following the parent and then the forked
child. test_unwind_live does the same with freshly built programs.

    python3 -m tests.helpers.stackcapture [OUTDIR]

Each program gets OUTDIR/NAME/ with stops-parent.json, stops-child.json (registers, gdb's
backtrace, file names), *.stack.gz (the copied stack) and maps-*.txt (with the bin/ directory
written as @BIN@, so the fixtures do not depend on where the checkout is)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import DATA

HERE = str(DATA / "stacks")
PROGRAMS = {
    # name: (compiler, source, flags)
    "chain": ("gcc", "chain.c", ["-O2", "-fomit-frame-pointer", "-pthread"]),
    # No .eh_frame for the program's own code: its CFI is only in .debug_frame.
    "chain-debugframe": ("gcc", "chain.c", [
        "-O2", "-fomit-frame-pointer", "-pthread", "-g",
        "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
    ]),
    "templates": ("g++", "templates.cpp", ["-O2", "-fomit-frame-pointer"]),
}


def build(bindir: str) -> None:
    os.makedirs(bindir, exist_ok=True)
    for name, (cc, src, flags) in PROGRAMS.items():
        out = os.path.join(bindir, name)
        subprocess.run([cc, *flags, "-o", out, os.path.join(HERE, "src", src)], check=True)


def capture(bindir: str, outdir: str, name: str, follow: str, max_stops: int = 40) -> None:
    target = os.path.join(outdir, name)
    os.makedirs(target, exist_ok=True)
    env = dict(os.environ, HT_OUT=target, HT_FOLLOW=follow, HT_MAX=str(max_stops),
               HT_SKIP_LOADER="0" if name == "chain" else "1")
    subprocess.run(
        ["gdb", "-batch", "-nx", "-x", os.path.join(HERE, "gdb_capture.py"),
         "--args", os.path.join(bindir, name)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for fname in os.listdir(target):
        if fname.startswith("maps-"):
            path = os.path.join(target, fname)
            with open(path) as fh:
                text = fh.read().replace(bindir, "@BIN@")
            with open(path, "w") as fh:
                fh.write(text)


def main(outdir: str = HERE) -> None:
    bindir = os.path.join(outdir, "bin")
    build(bindir)
    for name in PROGRAMS:
        for follow in ("parent", "child"):
            capture(bindir, outdir, name, follow)


if __name__ == "__main__":
    main(*sys.argv[1:])
