"""Run under any CPython 3.8+: heaptrace's decoders (str objects, code objects, line tables)
applied to this interpreter's own live objects, read through ctypes as the probe reads
them, against what the interpreter says of them. Prints one JSON object: how many checks
ran and the mismatches (empty when the decoders agree with CPython).

argv[1]: the heaptrace checkout to import the decoders from.
"""

import ctypes
import dis
import json
import sys

sys.path.insert(0, sys.argv[1])

from heaptrace.stacks.python.codes import decode_str, read_code  # noqa: E402
from heaptrace.stacks.python.layouts import TABLE  # noqa: E402
from heaptrace.stacks.python.linetable import line_of  # noqa: E402

LAYOUT = TABLE[sys.version_info[:2]]


def read(addr, size):
    return ctypes.string_at(addr, size)


def expected_lines(code):
    """offset -> line, as the interpreter maps its own bytecode."""
    if hasattr(code, "co_lines"):
        return {offset: line for start, end, line in code.co_lines()
                for offset in range(start, end, 2)}
    starts = list(dis.findlinestarts(code))
    lines, current = {}, None
    for offset in range(0, len(code.co_code), 2):
        for start, line in starts:
            if start == offset:
                current = line
        lines[offset] = current
    return lines


def codes_of(code):
    yield code
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            yield from codes_of(const)


class Radio:
    def receive(self, n):
        def inner():
            return bytearray(n)
        return inner()


def main():
    checked, wrong = 0, []
    for text in ("heaptrace", "ünïcödé", "日本語の名前", "emoji \U0001F600 name", "x" * 300):
        checked += 1
        got = decode_str(read(id(text), LAYOUT.compact_size + 4 * len(text)), LAYOUT)
        if got != text:
            wrong.append(["str", text, got])
    import json.encoder as module
    sources = [module.__file__, __file__]
    for path in sources:
        with open(path) as fh:
            top = compile(fh.read(), path, "exec")
        for code in codes_of(top):
            checked += 1
            info = read_code(read, id(code), LAYOUT, id(type(code)))
            qualname = getattr(code, "co_qualname", code.co_name)
            got = info and (info.name, info.qualname, info.filename, info.firstlineno)
            if got != (code.co_name, qualname, code.co_filename, code.co_firstlineno):
                wrong.append(["code", qualname, got])
                continue
            for offset, line in expected_lines(code).items():
                checked += 1
                mine = line_of(info.lines, info.lines_format, info.firstlineno, offset)
                if mine != line:
                    wrong.append(["line", qualname, offset, line, mine])
    print(json.dumps({"version": list(sys.version_info[:2]), "checked": checked,
                      "wrong": wrong[:20]}))


main()
