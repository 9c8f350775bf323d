"""CFI parsing and interpretation, checked against binutils' readelf --debug-dump=frames-interp
on real files: the test programs (.eh_frame, and .debug_frame only) and a sample of libc."""

from __future__ import annotations

import re
import subprocess

import pytest

from heaptrace.stacks.elf import open_elf
from heaptrace.stacks.unwind.cfi import EXPR, OFFSET, REGISTER, UNDEFINED, VAL_OFFSET, CfiTable
from tests.helpers.stackfixtures import STACKS

REG_NAMES = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "ra")  # DWARF order
REGS = {name: i for i, name in enumerate(REG_NAMES)}
TOKEN = re.compile(r"r\d+ \(\w+\)|\S+")
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def readelf_rows(path):
    """(loc, cfa text, {register: rule text}) of every row readelf interprets."""
    text = subprocess.run(["readelf", "--debug-dump=frames-interp", path],
                          capture_output=True, text=True, check=False).stdout
    rows, columns, previous = [], [], ""
    for line in text.splitlines():
        if " CIE" in line:
            columns = []  # a CIE's own rows are not at any code address
        elif line.strip().startswith("LOC") and " FDE " in previous:
            columns = line.split()[2:]
        elif re.match(r"^[0-9a-f]{16} ", line) and columns:
            tokens = TOKEN.findall(line)
            rows.append((int(tokens[0], 16), tokens[1], dict(zip(columns, tokens[2:]))))
        previous = line
    return rows


def expected_cfa(text):
    if text == "exp":
        return "exp"
    reg, off = re.match(r"(\w+)([+-]\d+)", text).groups()
    return (REGS[reg], int(off))


def matches(rule_entry, text):
    if text == "u":
        return rule_entry is None or rule_entry[0] == UNDEFINED
    kind, arg = rule_entry if rule_entry else (None, None)
    if text.startswith("c"):
        return kind == OFFSET and arg == int(text[1:])
    if text.startswith("v") and text != "vexp":
        return kind == VAL_OFFSET and arg == int(text[1:])
    if text == "exp":
        return kind == EXPR
    return kind == REGISTER and arg == int(text.split()[0][1:])


def check_file(path, every=1):
    elf = open_elf(path)
    table = CfiTable(elf)
    rows = readelf_rows(path)
    assert rows
    for loc, cfa, regs in rows[::every]:
        rule = table.rule(loc)
        assert rule is not None, hex(loc)
        got_cfa = "exp" if rule.cfa_expr is not None else (rule.cfa_reg, rule.cfa_off)
        assert got_cfa == expected_cfa(cfa), hex(loc)
        saved = {reg: (kind, arg) for reg, kind, arg in rule.saved}
        for name, text in regs.items():
            assert matches(saved.get(REGS[name]), text), (hex(loc), name, text, saved)
    return len(rows[::every])


@pytest.mark.parametrize("program", ["chain", "chain-debugframe", "templates"])
def test_every_row_of_the_test_programs_agrees_with_readelf(program):
    assert check_file(f"{STACKS}/bin/{program}") > 10


def test_a_sample_of_libc_agrees_with_readelf():
    assert check_file(LIBC, every=37) > 500


def test_no_rule_outside_any_fde():
    table = CfiTable(open_elf(LIBC))
    assert table.rule(0) is None
    assert table.rule(0x7FFFFFFFFFFF) is None
