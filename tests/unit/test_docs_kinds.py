"""Every kind and every `--event` value is in the docs (issue 13, item 7): the kinds table
of docs/run.md, the README's command list and flame.md's selection. A kind added to
events.SPECS fails here until the docs say what it counts."""

from __future__ import annotations

import re
from pathlib import Path

from heaptrace.analysis.stacks import EVENT_CHOICES
from heaptrace.events import KINDS

ROOT = Path(__file__).resolve().parents[2]


def section(path: str, heading: str) -> str:
    text = (ROOT / path).read_text()
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def test_run_md_has_a_row_per_kind_and_every_event_value():
    kinds = section("docs/run.md", "## Kinds and views")
    table = kinds.split("`--event` chooses")[0]
    rows = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert rows == list(KINDS)
    for value in EVENT_CHOICES:
        assert f"`{value}`" in kinds or value in KINDS, value


def test_readme_and_flame_md_list_every_kind():
    readme = (ROOT / "README.md").read_text()
    kind_line = next(line for line in readme.splitlines() if line.startswith("KIND is one of"))
    assert all(kind in kind_line for kind in KINDS)
    flame = section("docs/flame.md", "## What is selected")
    listed = re.search(r"`--event (\w+(?:\|\w+)+)`", flame).group(1).split("|")
    assert listed == list(KINDS)
