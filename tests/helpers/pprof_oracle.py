"""Reading a pprof profile without heaptrace's encoder: Google's protoc decodes it with the
published profile.proto (Debian's golang-github-google-pprof-dev ships it), and Go's own
`go tool pprof` reads it as pprof users will.

    profile = decode("out.pb.gz")   # the Profile message as nested dicts, strings resolved
    stacks(profile)                 # {root-first names: first value}, like flame --folded
"""

from __future__ import annotations

import codecs
import gzip
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

PROFILE_PROTO = Path("/usr/share/gocode/src/github.com/google/pprof/proto/profile.proto")
# Fields protoc prints once per value but that profile.proto declares repeated ("line" is
# also Line's own line number, a single integer).
REPEATED = {"sample_type", "sample", "mapping", "location", "function", "string_table",
            "location_id", "value", "label", "comment"}


def protoc_text(path: str) -> str:
    """protoc's text format of the gzip-compressed Profile at `path`."""
    assert PROFILE_PROTO.is_file(), "install golang-github-google-pprof-dev (profile.proto)"
    raw = gzip.decompress(Path(path).read_bytes())
    proc = subprocess.run(["protoc", f"-I{PROFILE_PROTO.parent}", str(PROFILE_PROTO),
                           "--decode=perftools.profiles.Profile"],
                          input=raw, capture_output=True, check=True)
    return proc.stdout.decode("utf-8")


def parse_text(text: str) -> dict:
    """Protobuf text format (as protoc --decode prints it) into nested dicts; repeated
    fields are lists."""
    root: dict = {}
    path: List[dict] = [root]
    for line in text.splitlines():
        line = line.strip()
        if line.endswith("{"):
            child: dict = {}
            _put(path[-1], line[:-1].strip(), child)
            path.append(child)
        elif line == "}":
            path.pop()
        elif line:
            name, value = line.split(": ", 1)
            _put(path[-1], name, _scalar(value))
    return root


def _put(message: dict, name: str, value: object) -> None:
    if name in REPEATED or (name == "line" and isinstance(value, dict)):
        message.setdefault(name, []).append(value)
    else:
        message[name] = value


def _scalar(text: str) -> object:
    if text.startswith('"'):
        return codecs.escape_decode(text[1:-1].encode("latin-1"))[0].decode("utf-8")
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def decode(path: str) -> dict:
    """The Profile message with every string index replaced by its string."""
    profile = parse_text(protoc_text(path))
    strings = profile["string_table"]
    assert strings[0] == ""
    s = lambda message, field: strings[message.get(field, 0)]  # noqa: E731
    profile["sample_type"] = [(s(t, "type"), s(t, "unit")) for t in profile.get("sample_type", [])]
    for m in profile.get("mapping", []):
        m["filename"], m["build_id"] = s(m, "filename"), s(m, "build_id")
    for f in profile.get("function", []):
        f["name"], f["system_name"], f["filename"] = (s(f, "name"), s(f, "system_name"),
                                                      s(f, "filename"))
    for sample in profile.get("sample", []):
        sample["label"] = {s(lab, "key"): lab["num"] if "num" in lab else s(lab, "str")
                           for lab in sample.get("label", [])}
    profile["comment"] = [strings[c] for c in profile.get("comment", [])]
    profile["default_sample_type"] = s(profile, "default_sample_type")
    return profile


def frames(profile: dict, sample: dict) -> Tuple[str, ...]:
    """A sample's root-first function names (one line per location)."""
    functions = {f["id"]: f["name"] for f in profile.get("function", [])}
    locations = {loc["id"]: loc for loc in profile.get("location", [])}
    names = []
    for loc_id in sample.get("location_id", []):
        lines = locations[loc_id].get("line", [])
        assert len(lines) == 1, locations[loc_id]
        names.append(functions[lines[0]["function_id"]])
    return tuple(reversed(names))


def stacks(profile: dict, index: int = 0) -> Dict[Tuple[str, ...], int]:
    """Value `index` summed per root-first stack, samples with the same names merged."""
    found: Dict[Tuple[str, ...], int] = {}
    for sample in profile.get("sample", []):
        key = frames(profile, sample)
        found[key] = found.get(key, 0) + sample.get("value", [0] * (index + 1))[index]
    return {k: v for k, v in found.items() if v}


def totals(profile: dict) -> Dict[str, int]:
    """Sum of each sample type over every sample."""
    names = [t for t, _ in profile["sample_type"]]
    sums = dict.fromkeys(names, 0)
    for sample in profile.get("sample", []):
        for name, value in zip(names, sample.get("value", [])):
            sums[name] += value
    return sums


def go_pprof_raw(path: str, tmp: Path) -> Tuple[List[str], List[List[int]]]:
    """`go tool pprof -raw`: the sample type names and each sample's values, as Go's
    pprof parsed them."""
    env = dict(os.environ, HOME=str(tmp), PPROF_TMPDIR=str(tmp))
    proc = subprocess.run(["go", "tool", "pprof", "-symbolize=none", "-raw", path],
                          capture_output=True, text=True, env=env, check=True)
    lines = proc.stdout.splitlines()
    start = lines.index("Samples:")
    names = [re.sub(r"\[dflt\]$", "", t).split("/")[0] for t in lines[start + 1].split()]
    values = []
    for line in lines[start + 2:]:
        if line.startswith("Locations"):
            break
        head = line.split(":", 1)[0].split()
        if head and all(v.lstrip("-").isdigit() for v in head) and len(head) == len(names):
            values.append([int(v) for v in head])
    return names, values
