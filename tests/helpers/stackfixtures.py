"""Loads the gdb-captured stack fixtures of tests/data/stacks and, for aarch64 (captured
under qemu-user), tests/data/stacks-aarch64 (see capture.py in each)."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from typing import List, Optional

from heaptrace.stacks.procmaps import ProcMaps
from tests.helpers import DATA

STACKS = str(DATA / "stacks")
PROGRAMS = ("chain", "chain-debugframe", "templates")
STACKS_AARCH64 = str(DATA / "stacks-aarch64")
PROGRAMS_AARCH64 = ("chain", "chain-fp")


@dataclass
class Stop:
    program: str
    follow: str
    syscall: str
    pid: int
    tid: int
    ip: int
    sp: int
    bp: int
    stack: bytes
    maps_text: str
    gdb_pcs: List[int]
    gdb_names: List[Optional[str]]
    lr: Optional[int] = None  # aarch64's x30 (bp is x29 there)

    def procmaps(self) -> ProcMaps:
        return ProcMaps.from_maps_text(self.pid, self.maps_text)


def load(program: str, follow: str = "parent", root: str = STACKS) -> List[Stop]:
    base = os.path.join(root, program)
    with open(os.path.join(base, f"stops-{follow}.json")) as fh:
        raw = json.load(fh)
    return [_stop(program, follow, base, root, entry) for entry in raw]


def _stop(program: str, follow: str, base: str, root: str, e: dict) -> Stop:
    with open(os.path.join(base, e["stack"]), "rb") as fh:
        stack = gzip.decompress(fh.read())
    with open(os.path.join(base, e["maps"])) as fh:
        maps_text = fh.read().replace("@BIN@", os.path.join(root, "bin"))
    bt = e["gdb_bt"]
    return Stop(program, follow, e["syscall"], e["pid"], e["tid"], e["ip"], e["sp"],
                e["bp"] if "bp" in e else e["fp"], stack, maps_text,
                [f["pc"] for f in bt], [f["name"] for f in bt], e.get("lr"))


def all_stops(root: str = STACKS) -> List[Stop]:
    return [s for p in PROGRAMS for f in ("parent", "child") for s in load(p, f, root)]


def aarch64_stops(root: str = STACKS_AARCH64) -> List[Stop]:
    return [s for p in PROGRAMS_AARCH64 for s in load(p, "parent", root)]
