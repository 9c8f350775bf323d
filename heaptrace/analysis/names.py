"""What a C++ symbol name is made of, and shorter forms of it for text views.

    unsigned long heaptest::fill<heaptest::Pool<Block<64ul>, 1024ul> >(heaptest::Pool<...>&, int)
    level 1: heaptest::fill<heaptest::Pool<Block<64ul>, 1024ul> >     (return type, parameters)
    level 2: fill<Pool<Block<64ul>, 1024ul> >                         (scopes, arguments kept)
    level 3: heaptest::fill<…>                                        (template arguments)
    level 4: fill<…>                                                  (both)

Each level is shorter than the one before for the names C++ programs have; a text column
takes the first that fits, and steps back towards level 0 where two rows would read the same
(level 2 tells two instances of one template apart in the least room).

Demangled names nest brackets of four kinds and contain some that are not brackets at all
(`operator<<`, `operator()`, `->`, `(anonymous namespace)`), so a name is read once, left to
right, with a stack of open brackets: linear in its length, whatever a traced program calls
its symbols. A name that does not read as C++ (unbalanced brackets) is returned as it is.
Full names stay in JSON output and SVG titles; only text columns use the short forms.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

LEVELS = (0, 1, 2, 3, 4)
ELIDED = "<…>"
# Operator names whose characters are not brackets (longest first, so `<<=` beats `<<`).
_OPERATORS = ("()", "[]", "<<=", ">>=", "<=>", "->*", "->", "<<", ">>", "<=", ">=", "==", "!=",
              "&&", "||", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<", ">",
              "+", "-", "*", "/", "%", "^", "&", "|", "~", "!", "=", ",", '""')
_ANONYMOUS = "(anonymous namespace)"
_OPEN = {"(": ")", "<": ">", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_IDENT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
# Code from these namespaces is the C++ (or Rust) standard library, even where templates
# put it in the program's own binary.
LIBRARY_SCOPES = ("std::", "__gnu_cxx::", "__cxxabiv1::", "__gnu_debug::", "core::", "alloc::")


class Mark(NamedTuple):
    """A structural character of a name: a bracket, a blank or `::`, at a nesting depth."""

    pos: int
    char: str  # "(", ")", "<", ">", "[", "]", "{", "}", " " or ":"
    depth: int  # brackets open before it (for a closing bracket: including its own)


def _operator_end(name: str, i: int) -> int:
    """Where an `operator...` name that starts at i ends."""
    j = i + len("operator")
    while j < len(name) and name[j] == " ":
        j += 1
    for op in _OPERATORS:
        if name.startswith(op, j):
            return j + len(op)
    # operator new, operator delete[], operator bool: a word (and [] for the array forms)
    k = j
    while k < len(name) and (name[k] in _IDENT or name.startswith("::", k)):
        k += 2 if name[k] == ":" else 1
    if k > j and name.startswith("[]", k):
        k += 2
    return k if k > j else i + len("operator")


def marks(name: str) -> Optional[List[Mark]]:
    """The structural characters of `name`, or None if its brackets do not balance."""
    found: List[Mark] = []
    stack: List[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "o" and name.startswith("operator", i) and (i == 0 or name[i - 1] not in _IDENT) \
                and name[i + 8:i + 9] not in _IDENT:
            i = _operator_end(name, i)
            continue
        if c == "(" and name.startswith(_ANONYMOUS, i):
            i += len(_ANONYMOUS)
            continue
        if c == "-" and name[i + 1:i + 2] == ">":
            i += 2
            continue
        if c in _OPEN:
            found.append(Mark(i, c, len(stack)))
            stack.append(c)
        elif c in _CLOSE:
            if not stack or stack[-1] != _CLOSE[c]:
                return None
            found.append(Mark(i, c, len(stack)))
            stack.pop()
        elif c == " " or (c == ":" and name[i + 1:i + 2] == ":"):
            found.append(Mark(i, c, len(stack)))
            i += 1 if c == " " else 2
            continue
        i += 1
    return None if stack else found


def qualified_name(name: str) -> str:
    """The function's qualified name: no return type, no parameter list or qualifiers after
    it (`const`, `[clone .isra.0]`, `[abi:cxx11]` stay only inside the name)."""
    found = marks(name)
    if found is None:
        return name
    top = [m for m in found if m.depth == 0]
    params = [m.pos for m in top if m.char == "("]
    end = params[-1] if params else len(name)
    start = 0
    for m in top:
        if m.pos >= end:
            break
        if m.char == " " and name[m.pos + 1:m.pos + 2] not in ("<", ""):
            start = m.pos + 1  # a blank between a return type and the name
    return name[start:end].strip() or name


def without_template_args(name: str) -> str:
    """Every outermost `<...>` of a qualified name as `<…>`."""
    found = marks(name)
    if found is None:
        return name
    out, last = [], 0
    for m in found:
        if m.char == "<" and m.depth == 0:
            out.append(name[last:m.pos])
        elif m.char == ">" and m.depth == 1:
            out.append(ELIDED)
            last = m.pos + 1
    out.append(name[last:])
    return "".join(out)


def without_inner_scopes(name: str) -> str:
    """Every scope qualifier inside template arguments dropped (`std::allocator<char>`
    becomes `allocator<char>`), and of the outermost name the last two parts kept."""
    found = marks(name)
    if found is None:
        return name
    out, last, component = [], 0, 0
    for m in found:
        if m.char in "<([{ ":
            component = m.pos + 1
        elif m.char == ":" and m.depth > 0:
            out.append(name[last:component])
            last = component = m.pos + 2
    out.append(name[last:])
    return last_scopes("".join(out))


def last_scopes(name: str, keep: int = 2) -> str:
    """The last `keep` parts of a qualified name split at its outermost `::`."""
    found = marks(name)
    if found is None:
        return name
    cuts = [m.pos for m in found if m.char == ":" and m.depth == 0]
    if len(cuts) < keep:
        return name
    return name[cuts[-keep] + 2:]


def shorten(name: str, level: int) -> str:
    """`name` at one of LEVELS (0: as is)."""
    if level <= 0 or ("(" not in name and "<" not in name and "::" not in name):
        return name
    short = qualified_name(name)
    if level == 2:
        return without_inner_scopes(short)
    if level >= 3:
        short = without_template_args(short)
    if level >= 4:
        short = last_scopes(short)
    return short


def is_library_code(name: str) -> bool:
    """A function of the C++ (or Rust) standard library, wherever its code was put."""
    return qualified_name(name).startswith(LIBRARY_SCOPES)
