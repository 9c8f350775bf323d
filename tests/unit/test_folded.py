"""Folded stacks obey the input rules of flamegraph.pl, difffolded.pl and inferno."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from heaptrace.errors import ImportFormatError
from heaptrace.formats.folded import parse_folded
from heaptrace.render.folded import (
    clean_frame,
    diff_lines,
    folded_lines,
    write_folded,
)

# How flamegraph.pl reads a line: the count is the last number; if what precedes it also
# ends in blank + number, that was the "before" column of a differential line.
PL_LINE = re.compile(r"^(.*)\s+?(\d+(?:\.\d*)?)$")

names = st.text(min_size=0, max_size=12)
profiles = st.dictionaries(st.lists(names, min_size=1, max_size=5).map(tuple),
                           st.integers(0, 10**12), max_size=20)


def pl_parse(line):
    """(stack, count, before) as flamegraph.pl would read the line."""
    stack, count = PL_LINE.match(line).groups()
    inner = PL_LINE.match(stack)
    return (inner.group(1), int(count), int(inner.group(2))) if inner else (stack, int(count), None)


@given(profiles)
def test_every_line_reads_back_in_flamegraph_pl_as_one_stack_and_count(profile):
    lines = list(folded_lines(profile))
    stacks = [pl_parse(line)[0] for line in lines]
    assert stacks == sorted(stacks)  # sorted by stack, as stackcollapse.pl sorts its keys
    for line in lines:
        stack, count, before = pl_parse(line)
        assert before is None
        assert count > 0
        frames = stack.split(";")
        assert all(f and f == f.strip() and "\n" not in f for f in frames)
    assert sum(pl_parse(line)[1] for line in lines) == sum(profile.values())


@given(profiles)
def test_parse_reads_what_write_wrote(profile):
    out = io.StringIO()
    write_folded(profile, out)
    parsed = parse_folded(out.getvalue().splitlines())
    cleaned = {}
    for stack, count in profile.items():
        if count:
            key = tuple(clean_frame(f) for f in stack)
            cleaned[key] = cleaned.get(key, 0) + count
    assert parsed == cleaned


@pytest.mark.parametrize("raw, clean", [
    ("a;b", "a:b"), ("new\nline", "new line"), ("", "[unknown]"), ("  pad  ", "pad"),
    ("worker 12", "worker_12"), ("v 1.5", "v_1.5"), ("f(int, char) const", "f(int, char) const"),
])
def test_clean_frame(raw, clean):
    assert clean_frame(raw) == clean


def test_duplicate_stacks_after_cleaning_add_up():
    assert list(folded_lines({("a;b",): 1, ("a:b",): 2, ("z",): 0})) == ["a:b 3"]


@given(st.dictionaries(st.lists(names, min_size=1, max_size=4).map(tuple),
                       st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), max_size=10))
def test_diff_lines_are_what_difffolded_pl_prints(pairs):
    for line in diff_lines(pairs):
        stack, after, before = pl_parse(line)
        assert before is not None and before + after > 0


def test_parse_errors_name_file_and_line():
    with pytest.raises(ImportFormatError) as err:
        parse_folded(["a;b 1", "", "#;c 2", "a;b"], "x.folded")
    assert err.value.line == 4 and "x.folded:4" in str(err.value)
    with pytest.raises(ImportFormatError):
        parse_folded(["a;b 1 2"])  # differential, not a profile


def test_parse_adds_duplicates_and_rounds_fractions():
    assert parse_folded(["a;b 1", "a;b 2.6", "c d;e 3\r\n"]) == {("a", "b"): 4, ("c d", "e"): 3}
