"""Frame names exactly as FlameGraph's stackcollapse.pl and stackcollapse-perf.pl make them.

Both scripts are Perl; these functions reproduce their default behaviour step by step, Perl
quirks included (a leading "L" dropped, `split` dropping trailing empty fields), so a flame
graph of an imported file has the same frames as the one FlameGraph draws. Every regular
expression is ASCII-only, as Perl's are on byte strings.
"""

from __future__ import annotations

import re
from typing import List

_A = re.ASCII
_OFFSET = re.compile(r"\+[^+]*$", _A)
_LEADING_SPACE = re.compile(r"^\s*", _A)
_PERF_OFFSET = re.compile(r"\+0x[\da-f]+$", _A)
_PERF_ARGS = re.compile(r"\((?!anonymous namespace\)).*", _A)


def perl_split(text: str, sep: str) -> List[str]:
    """Perl's `split /sep/, text`: like str.split, but trailing empty fields are dropped."""
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def dtrace_frame(line: str) -> List[str]:
    """stackcollapse.pl on one ustack() frame line: offset dropped, module kept, C++
    arguments removed, inlined frames ("a->b") split, root-most first."""
    frame = _LEADING_SPACE.sub("", line, count=1)
    frame = _OFFSET.sub("", frame, count=1)
    frame = _without_cxx_args(frame)
    if frame == "":
        frame = "-"
    names: List[str] = []
    for func in perl_split(frame, "->"):
        func = func.replace(";", ":")
        if func.startswith("L"):  # Java's "Lpkg/Class;" prefix (and, as in Perl, any L)
            func = func[1:]
        if names:
            func += "_[i]"
        names.append(func)
    return names


def _without_cxx_args(frame: str) -> str:
    """Perl's `s/(::.*)[(<].*/$1/` without backtracking: cut at the last "(" or "<" when a
    "::" comes before it."""
    last = max(frame.rfind("("), frame.rfind("<"))
    first = frame.find("::")
    return frame[:last] if first >= 0 and first + 2 <= last else frame


def _has_dotted_args(func: str) -> bool:
    r"""Perl's `/\.\(.*\)\./` without backtracking: a ".(" with a ")." after it."""
    start = func.find(".(")
    return start >= 0 and func.rfind(").") >= start + 2


def perf_frame(rawfunc: str, module: str, pname: str) -> List[str]:
    """stackcollapse-perf.pl (default options) on one callchain line's symbol and module.
    Returns no names for lines the script skips (a process name in parentheses)."""
    rawfunc = _PERF_OFFSET.sub("", rawfunc, count=1)
    if rawfunc.startswith("("):
        return []
    names: List[str] = []
    for func in perl_split(rawfunc, "->"):
        names.append(_perf_name(func, module, pname, inlined=bool(names)))
    return names


def _perf_name(func: str, module: str, pname: str, inlined: bool) -> str:
    if func == "[unknown]":
        # Use the module's file name instead, if perf knew the module.
        func = "[" + (module.rsplit("/", 1)[-1] if module != "[unknown]" else "unknown") + "]"
    func = func.replace(";", ":")
    if not _has_dotted_args(func):
        func = _PERF_ARGS.sub("", func, count=1)
    func = func.replace('"', "").replace("'", "")
    if pname.startswith("java") and "/" in func and func.startswith("L"):
        func = func[1:]
    if inlined and "_[i]" not in func:
        func += "_[i]"
    return func


def perf_pname(comm: str) -> str:
    """The root frame stackcollapse-perf.pl gives a sample: its command, blanks as "_"."""
    return comm.replace(" ", "_")
