"""Frame colours: the palettes flamegraph.pl users know, the red/blue differential scale,
backgrounds, and the palette map file that keeps colours consistent across graphs.

A name always gets the same colour (it is derived from a hash of the name, not from a random
generator), so the same function has the same colour in every graph. `--hash` instead
weighs the first characters most, so that similar names get similar colours; `--random`
draws them from a seed, so each graph looks different; a palette map (`--cp`) pins the
colour a name got the first time, whatever the options of later graphs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import stat
from typing import Callable, Dict, Mapping, Optional, Tuple

from heaptrace.errors import HeaptraceError, ImportFormatError, UsageError
from heaptrace.events import is_python_name
from heaptrace.recording.files import write_text

Shades = Tuple[float, float, float]

THEMES = ("mem", "hot", "io")
LANGUAGES = ("java", "js", "perl", "wakeup", "chain")
PLAIN = ("red", "green", "blue", "aqua", "yellow", "purple", "orange")
PALETTES = THEMES + PLAIN + LANGUAGES
MERGED_FILL = "rgb(190,190,190)"  # boxes standing for many frames too narrow to draw
SEARCH_FILL = "rgb(230,0,230)"

# Background gradients (top, bottom) by --bgcolors name, as flamegraph.pl draws them, and
# the one each palette gets by default (flamegraph.pl's pairs; differential graphs get a
# flat grey so that white, unchanged frames stand out).
BACKGROUNDS = {"yellow": ("#eeeeee", "#eeeeb0"), "blue": ("#eeeeee", "#e0e0ff"),
               "green": ("#eef2ee", "#e0ffe0"), "grey": ("#f8f8f8", "#e8e8e8"),
               "diff": ("#eeeeee", "#eeeeee")}
DEFAULT_BACKGROUNDS = {"mem": "green", "io": "blue", "wakeup": "blue", "chain": "blue",
                       "diff": "diff", **{name: "grey" for name in PLAIN}}
BACKGROUND_CHOICES = ("yellow", "blue", "green", "grey")
_FLAT = re.compile(r"^#[0-9a-fA-F]{6}$")


def background(bgcolors: str, palette: str) -> Tuple[str, str]:
    """(top, bottom) of the background gradient: --bgcolors (yellow, blue, green, grey, or
    one flat #rrggbb), or when empty the palette's default."""
    name = bgcolors.strip()
    if not name:
        return BACKGROUNDS[DEFAULT_BACKGROUNDS.get(palette, "yellow")]
    if _FLAT.match(name):
        return name, name
    if name not in BACKGROUND_CHOICES:
        raise UsageError(f"--bgcolors takes {', '.join(BACKGROUND_CHOICES)} or #rrggbb,"
                         f" not {name!r}")
    return BACKGROUNDS[name]


def stable_shades(name: str) -> Shades:
    """Three numbers in [0, 1) fixed by the name."""
    digest = hashlib.blake2b(name.encode("utf-8", "replace"), digest_size=6).digest()
    a, b, c = (int.from_bytes(digest[i:i + 2], "little") / 65536 for i in (0, 2, 4))
    return a, b, c


def weighted_hash(name: str) -> float:
    """A number in [0, 1] dominated by the first characters of the name (module prefix
    "mod`" dropped), so that related names get related colours."""
    name = name.split("`", 1)[-1]
    vector, total, weight = 0.0, 1.0, 1.0
    for i, char in enumerate(name[:3]):
        modulus = 10 + i
        vector += (ord(char) % modulus) / (modulus - 1) * weight
        total += weight
        weight *= 0.7
    return 1 - vector / total


def hashed_shades(name: str) -> Shades:
    back = weighted_hash(name[::-1])
    return weighted_hash(name), back, back


def _rgb(r: float, g: float, b: float) -> str:
    return f"rgb({int(r)},{int(g)},{int(b)})"


_FORMULAS: Dict[str, Callable[[Shades], str]] = {
    "hot": lambda v: _rgb(205 + 50 * v[2], 230 * v[0], 55 * v[1]),
    "mem": lambda v: _rgb(0, 190 + 50 * v[1], 210 * v[0]),
    "io": lambda v: _rgb(80 + 60 * v[0], 80 + 60 * v[0], 190 + 55 * v[1]),
    "red": lambda v: _rgb(200 + 55 * v[0], 50 + 80 * v[0], 50 + 80 * v[0]),
    "green": lambda v: _rgb(50 + 60 * v[0], 200 + 55 * v[0], 50 + 60 * v[0]),
    "blue": lambda v: _rgb(80 + 60 * v[0], 80 + 60 * v[0], 205 + 50 * v[0]),
    "yellow": lambda v: _rgb(175 + 55 * v[0], 175 + 55 * v[0], 50 + 20 * v[0]),
    "purple": lambda v: _rgb(190 + 65 * v[0], 80 + 60 * v[0], 190 + 65 * v[0]),
    "aqua": lambda v: _rgb(50 + 60 * v[0], 165 + 55 * v[0], 165 + 55 * v[0]),
    "orange": lambda v: _rgb(190 + 65 * v[0], 90 + 65 * v[0], 0),
}

# Language palettes pick a plain palette from what the name looks like (first match wins).
_RULES = {
    "java": [(r"_\[j\]$", "green"), (r"_\[i\]$", "aqua"),
             (r"^L?(java|javax|jdk|net|org|com|io|sun)/", "green"), (r":::", "green"),
             (r"_\[k\]$", "orange"), (r"::", "yellow")],
    "perl": [(r"::", "yellow"), (r"Perl|\.pl", "green"), (r"_\[k\]$", "orange")],
    "js": [(r"_\[j\]$.*", "js-jit"), (r"::", "yellow"), (r"/[^/]*\.js", "green"),
           (r":", "aqua"), (r"^ $", "green"), (r"_\[k\]", "orange")],
    "wakeup": [(r"", "aqua")],
    "chain": [(r"_\[w\]", "aqua"), (r"", "blue")],
}


# Python frames stand apart from the native ones (as flamegraph.pl's --colors java sets Java
# apart) in every palette but the plain ones: their own hue, per palette.
PYTHON_HUE = {"hot": "aqua"}  # the others: yellow
PYTHON_HUE_DEFAULT = "yellow"


def language_palette(palette: str, name: str) -> str:
    for pattern, plain in _RULES[palette]:
        if re.search(pattern, name):
            if plain == "js-jit":  # JIT frames: source (has a path) or builtin
                return "green" if "/" in name else "aqua"
            return plain
    return "red"


def seeded_shades(name: str, seed: int) -> Shades:
    """Three numbers in [0, 1) drawn for the name from a generator seeded by `seed`: one
    colour per name within a graph, another one in a graph with another seed."""
    draw = random.Random(f"{seed}\0{name}")
    return draw.random(), draw.random(), draw.random()


def frame_color(name: str, palette: str = "mem", use_hash: bool = False,
                seed: Optional[int] = None) -> str:
    """The fill of a frame named `name` in one of PALETTES; `seed` set: random shades."""
    if palette not in PLAIN and is_python_name(name):
        palette = PYTHON_HUE.get(palette, PYTHON_HUE_DEFAULT)
    elif palette in _RULES:
        palette = language_palette(palette, name)
    if use_hash:
        shades = hashed_shades(name)
    else:
        shades = stable_shades(name) if seed is None else seeded_shades(name, seed)
    return _FORMULAS.get(palette, _FORMULAS["mem"])(shades)


def diff_color(delta: int, max_delta: int) -> str:
    """White when unchanged, redder the more a frame grew, bluer the more it shrank."""
    if max_delta <= 0 or delta == 0:
        return "rgb(255,255,255)"
    fade = int(210 * (max_delta - min(abs(delta), max_delta)) / max_delta)
    return f"rgb(255,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},255)"


# --- palette map (flamegraph.pl's palette.map: one `name->rgb(r,g,b)` line per name) -----

MAX_PALETTE_MAP = 64 << 20
_COLOR = re.compile(r"^(rgb\(\d{1,3},\d{1,3},\d{1,3}\)|#[0-9a-fA-F]{6})$")


def read_palette_map(path: str) -> Dict[str, str]:
    """The colours a palette map file pins, {} if it does not exist yet. A name may itself
    contain "->" (C++ `operator->`): the colour is after the last one. Only a regular file
    is read (not a link, a FIFO or a device), and only up to MAX_PALETTE_MAP bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise HeaptraceError(f"cannot read palette map {path}: "
                             f"{'a symbolic link' if exc.errno == errno.ELOOP else exc.strerror}"
                             ) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HeaptraceError(f"cannot read palette map {path}: not a regular file")
        data = f.read(MAX_PALETTE_MAP + 1)
    if len(data) > MAX_PALETTE_MAP:
        raise HeaptraceError(f"palette map {path} is larger than {MAX_PALETTE_MAP:,} bytes")
    colors: Dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").split("\n"), 1):
        line = line.rstrip("\r")
        name, sep, color = line.rpartition("->")
        if not line.strip():
            continue
        if not sep or not _COLOR.match(color.strip()):
            raise ImportFormatError(path, number, "expected `name->rgb(r,g,b)`")
        colors[name] = color.strip()
    return colors


def write_palette_map(path: str, colors: Mapping[str, str]) -> None:
    """Sorted `name->colour` lines, as flamegraph.pl writes palette.map; names that cannot
    sit on one line are left out (they get their usual colour next time). Written as every
    output is (recording/files.py): a private file renamed over the old map, never through a
    link."""
    lines = [f"{name}->{color}\n" for name, color in sorted(colors.items())
             if "\n" not in name and "\r" not in name]
    write_text(path, "".join(lines), "a palette map")
