"""What every SVG view shares: XML escaping and filling a template from render/assets/."""

from __future__ import annotations

import re
from importlib import resources
from typing import Mapping, TextIO

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_TOKEN = re.compile(r"\{\{(\w+)\}\}")


def escape(text: str) -> str:
    """Text safe inside XML elements and attributes; characters XML cannot carry at all
    become U+FFFD."""
    return _BAD_XML.sub("\ufffd", text).translate(_ESCAPES)


def asset(name: str) -> str:
    """A template, script or style sheet shipped as package data in render/assets/."""
    return (resources.files("heaptrace.render") / "assets" / name).read_text("utf-8")


def fill_template(name: str, values: Mapping[str, str], out: TextIO) -> None:
    """Write the asset `name` with each {{key}} replaced by values[key] (already escaped)."""
    out.write(_TOKEN.sub(lambda m: values[m.group(1)], asset(name)))
