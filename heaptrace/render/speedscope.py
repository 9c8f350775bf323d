"""speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json): frames
shared by every profile, and "sampled" profiles whose samples are root-first lists of frame
indices, each weighed in bytes. Format notes: docs/export.md.

With process names on, one profile per process image ("grow (pid 42)"), its stacks without
the process root frame that `heaptrace flame` draws; with them off, one profile for all. The
samples come in the order their stacks first ran, so speedscope's "Time Order" view shows the
run from left to right.
"""

from __future__ import annotations

import json
from typing import Dict, Optional, TextIO, Tuple

from heaptrace import __version__
from heaptrace.analysis.samples import Located, Process, Samples

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def build(samples: Samples, name: str) -> dict:
    """The file's JSON object; `name` names the whole file (speedscope's title)."""
    frames: Dict[Tuple[str, Optional[str]], int] = {}
    profiles: Dict[Optional[Process], dict] = {}
    unit = samples.types[0].unit if samples.types else "bytes"
    for s in samples.samples:
        weight = s.values[0]
        if weight <= 0:
            continue  # flame draws no width for it either
        key = s.process if samples.process_names else None
        profile = profiles.get(key)
        if profile is None:
            title = f"{key.name} (pid {key.pid})" if key is not None else samples.description
            profile = profiles[key] = sampled(title, unit)
        profile["samples"].append([frame_index(loc, frames) for loc in reversed(s.frames)])
        profile["weights"].append(weight)
        profile["endValue"] += weight
    found = list(profiles.values()) or [sampled(samples.description, unit)]
    return {
        "$schema": SCHEMA,
        "name": name,
        "exporter": f"heaptrace {__version__}",
        "activeProfileIndex": max(range(len(found)), key=lambda i: found[i]["endValue"]),
        "shared": {"frames": [frame_json(name, module) for name, module in frames]},
        "profiles": found,
    }


def sampled(name: str, unit: str) -> dict:
    return {"type": "sampled", "name": name, "unit": unit, "startValue": 0, "endValue": 0,
            "samples": [], "weights": []}


def frame_index(loc: Located, frames: Dict[Tuple[str, Optional[str]], int]) -> int:
    """A frame is its name and module: the same function in two libraries is two frames."""
    return frames.setdefault((loc.frame.name, loc.frame.module), len(frames))


def frame_json(name: str, module: Optional[str]) -> dict:
    """speedscope shows `file` beside the name: heaptrace knows the binary, not the source."""
    return {"name": name, "file": module} if module else {"name": name}


def write(samples: Samples, name: str, out: TextIO) -> None:
    json.dump(build(samples, name), out, separators=(",", ":"))
    out.write("\n")
