"""The speedscope export loaded in the real speedscope app (npm package `speedscope`) in
headless Chromium: the frame names and sizes read off the page are `heaptrace flame`'s."""

from __future__ import annotations

import pytest

from tests.helpers import exportdata, speedscope_app
from tests.helpers.exportdata import flame, speedscope


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return exportdata.write(str(tmp_path_factory.mktemp("export") / "rec.db"))


@pytest.fixture(scope="module")
def browser():
    yield from speedscope_app.launch()


@pytest.fixture(scope="module")
def app():
    return speedscope_app.install()


def test_speedscope_shows_our_frames(recording, tmp_path, browser, app):
    out = tmp_path / "rec.speedscope.json"
    doc = speedscope(recording, out, "--event", "all")
    viewer = speedscope_app.Viewer(browser, app, out, tmp_path)
    try:
        assert viewer.title().startswith(
            "rec.db: every call (brk+mmap+munmap+mremap+madvise+mprotect)")
        shown = viewer.profile_name()
        assert shown == doc["profiles"][doc["activeProfileIndex"]]["name"] == "prog (pid 1)"
        table = viewer.sandwich()
        expected = expected_sandwich(flame(recording, "--event", "all", "--pid", "1"), "prog")
        assert {name for name, _ in table} == set(expected)
        for (name, _file), (total, own) in table.items():
            assert close(total, expected[name][0]) and close(own, expected[name][1]), name
        assert {file for _, file in table} == {"prog", "libc.so.6", ""}
        assert viewer.profiles() == [(p["name"], p["endValue"]) for p in doc["profiles"]]
        viewer.previous_profile()
        assert viewer.profile_name() == "worker (pid 2)"
        assert {name for name, _ in viewer.sandwich()} == set(
            expected_sandwich(flame(recording, "--event", "all", "--pid", "2"), "worker"))
        assert viewer.errors == []
    finally:
        viewer.close()


def expected_sandwich(folded: dict, process: str) -> dict:
    """{name: (total, self)} of one process's stacks, the way speedscope's Sandwich view
    counts them: a frame's total counts each stack once, however often the name recurs."""
    found: dict = {}
    for stack, count in folded.items():
        if stack[0] != process:
            continue
        for name in set(stack[1:]):
            total, own = found.get(name, (0, 0))
            found[name] = (total + count, own + (count if name == stack[-1] else 0))
    return found


def close(shown: int, exact: int) -> bool:
    """speedscope prints sizes with two decimals: "18.00 KB"."""
    return abs(shown - exact) <= max(exact * 0.005, 1)
