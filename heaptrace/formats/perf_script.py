"""The lines of `perf script` output: a sample's header and its callchain lines.

    grow 8428/8428 [000] 361.498581: 1 syscalls:sys_enter_mmap: addr: 0x0, len: 0x2000, ...
            20ca3 mmap64+0x13 (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)

A header is read token by token: the command may hold blanks, so each token is tried as the
pid, and the fixed sequence that follows (pid[/tid] [cpu] time: [period] event: args) is
checked in a bounded number of steps. Nothing here backtracks, so a line of any length is
read in time linear in its length.
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Tuple

from heaptrace.formats.textinput import to_int

TOKEN = re.compile(r"[^ \t\n\r\f\v]+", re.ASCII)
DIGITS = frozenset("0123456789")
HEX = frozenset("0123456789abcdefABCDEF")
WORD = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


class Header(NamedTuple):
    comm: str
    pid: int
    tid: int
    sec: Optional[str]  # the timestamp's seconds and fraction, as printed
    frac: Optional[str]
    period: Optional[int]
    event: str
    args: str


def _digits(text: str) -> bool:
    return bool(text) and set(text) <= DIGITS


def _pid_tid(token: str) -> Optional[Tuple[int, int]]:
    pid, slash, tid = token.partition("/")
    if not _digits(pid) or (slash and not _digits(tid)):
        return None
    return to_int(pid), to_int(tid) if slash else to_int(pid)


def _is_cpu(token: str) -> bool:
    return token.startswith("[") and token.endswith("]") and _digits(token[1:-1])


def _time(token: str) -> Optional[Tuple[str, str]]:
    sec, dot, frac = token.removesuffix(":").partition(".")
    if token.endswith(":") and dot and _digits(sec) and _digits(frac):
        return sec, frac
    return None


def _rest(tokens: List[re.Match], i: int, line: str, pid: Tuple[int, int],
          timed: bool) -> Optional[Header]:
    """The header if tokens[i] is the pid: [cpu] [time:] [period] event: [args]. With
    `timed` a token that reads as a time is taken as one (the regular expression this
    replaces tried that first, then the same token as the event)."""
    j = i + 1
    if j < len(tokens) and _is_cpu(tokens[j].group()):
        j += 1
    when = _time(tokens[j].group()) if timed and j < len(tokens) else None
    j += when is not None
    period = None
    if j < len(tokens) and _digits(tokens[j].group()):
        period, j = to_int(tokens[j].group()), j + 1
    if j >= len(tokens) or len(tokens[j].group()) < 2 or not tokens[j].group().endswith(":"):
        return None
    args = line[tokens[j].end():].strip(" \t\n\r\f\v")
    comm = line[tokens[0].start():tokens[i - 1].end()]
    sec, frac = when if when else (None, None)
    return Header(comm, pid[0], pid[1], sec, frac, period, tokens[j].group()[:-1], args)


def parse_header(line: str) -> Optional[Header]:
    """A sample's first line, or None. The command is the shortest run of leading tokens
    after which the rest reads as a header."""
    tokens = list(TOKEN.finditer(line))
    if not tokens or tokens[0].start() != 0:
        return None
    for i in range(1, len(tokens)):
        pid = _pid_tid(tokens[i].group())
        if pid is not None:
            header = _rest(tokens, i, line, pid, True) or _rest(tokens, i, line, pid, False)
            if header is not None:
                return header
    return None


def parse_callchain(line: str) -> Optional[Tuple[str, str]]:
    """(symbol, module) of a callchain line `ADDR SYMBOL+OFF (MODULE)`, split as
    stackcollapse-perf.pl's `^\\s*(\\w+)\\s*(.+) \\((.*)\\)` splits it."""
    text = line.lstrip(" \t\n\r\f\v")
    end = 0
    while end < len(text) and text[end] in WORD:
        end += 1
    if end == 0:
        return None
    close = text.rfind(")")
    open_ = text.rfind(" (", 0, close)
    if close < 0 or open_ < 0:
        return None
    start = len(text) - len(text[end:].lstrip(" \t\n\r\f\v"))
    if start >= open_:  # `.+` takes a character back from `\s*` or `\w+` if it can
        start = open_ - 1
        if start < 1:
            return None
    return text[start:open_], text[open_ + 2:close]


def parse_args(text: str) -> Dict[str, int]:
    """A tracepoint's `name: value, name: value` arguments; values in hex or decimal."""
    args = {}
    for part in text.split(","):
        name, colon, value = part.strip(" \t").partition(": ")
        if not colon or not name or not set(name) <= WORD:
            continue
        value = value.strip(" \t")
        number = _number(value)
        if number is not None:
            args[name] = number
    return args


def _number(value: str) -> Optional[int]:
    if value[:2] in ("0x", "0X") and len(value) > 2 and set(value[2:]) <= HEX:
        return to_int(value, 16)
    digits = value[1:] if value.startswith("-") else value
    return to_int(value) if _digits(digits) else None
