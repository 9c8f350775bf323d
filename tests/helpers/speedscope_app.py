"""The real speedscope app (npm package `speedscope`) in headless Chromium, reading a file the
way its own command line opens one: index.html#localProfilePath=JS, where JS calls
speedscope.loadFileFromBase64(name, data).

The package is installed once into tests/tools/ (ignored by git) with npm. Frame names are
drawn on a canvas, so they are read off the Sandwich view's table, which is HTML.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from tests.helpers import TESTS

VERSION = "1.25.0"
TOOLS = TESTS / "tools"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]
UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def install() -> Path:
    """speedscope's index.html, installing the package with npm the first time."""
    prefix = TOOLS / f"speedscope-{VERSION}"
    index = prefix / "node_modules" / "speedscope" / "dist" / "release" / "index.html"
    if not index.is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund",
                        "--prefix", str(prefix), f"speedscope@{VERSION}"],
                       check=True, capture_output=True)
    return index


def launch() -> Iterator:
    """A headless Chromium (Debian's), for a module-scoped fixture."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install chromium: sudo scripts/setup-system.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Viewer:
    """One file open in speedscope."""

    def __init__(self, browser, index: Path, profile: Path, tmp: Path) -> None:
        loader = tmp / "load-profile.js"
        data = base64.b64encode(profile.read_bytes()).decode("ascii")
        loader.write_text(f"speedscope.loadFileFromBase64({json.dumps(profile.name)}, "
                          f"{json.dumps(data)})")
        self.errors: List[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 2000})
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"file://{index}#localProfilePath={loader}")
        self.page.get_by_text("Sandwich").wait_for()

    def title(self) -> str:
        return self.page.title()

    def profile_name(self) -> str:
        """The name of the profile on show: with several, the selector's ("prog (pid 1)
        (3/3)"), else the toolbar's own text, between its two groups of buttons."""
        return self.page.evaluate("""() => {
            const counter = [...document.querySelectorAll('span > span')]
                .find(s => /^\\(\\d+\\/\\d+\\)$/.test(s.textContent));
            if (counter) return counter.parentElement.firstChild.textContent.trim();
            return [...document.querySelectorAll('div')].flatMap(d => [...d.childNodes])
                .filter(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim()
                        && n.parentElement.children.length >= 2)
                .map(n => n.textContent.trim())[0]; }""")

    def profiles(self) -> List[Tuple[str, int]]:
        """The profile selector's list (present when there are several): name and total
        weight of each profile."""
        rows = self.page.evaluate("""() => [...document.querySelectorAll('tr[title]')]
            .map(tr => [...tr.cells].map(td => td.textContent))""")
        return [(name, size(total)) for _index, name, total in rows]

    def previous_profile(self) -> None:
        shown = self.profile_name()
        self.page.keyboard.press("p")
        for _ in range(100):
            if self.profile_name() != shown:
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"speedscope stayed on {shown}")

    def sandwich(self) -> Dict[Tuple[str, str], Tuple[int, int]]:
        """The Sandwich table of the profile on show: {(name, file): (total bytes, self
        bytes)}, the sizes parsed back from speedscope's rounded "63.75 MB (86%)" (binary
        units)."""
        self.page.get_by_text("Sandwich").click()
        self.page.locator("tr:not([title]) > td").first.wait_for()
        rows = self.page.evaluate("""() => [...document.querySelectorAll('tr:not([title])')]
            .filter(tr => tr.cells.length == 3 && tr.cells[0].tagName == 'TD')
            .map(tr => [...tr.cells].map(td => td.textContent).concat([tr.cells[2].title]))""")
        return {(name, file): (size(total), size(own)) for total, own, name, file in rows}

    def close(self) -> None:
        self.page.close()


def size(text: str) -> int:
    """ "63.75 MB (86%)" -> bytes."""
    number, unit = text.split("(")[0].split()
    return round(float(number) * UNITS[unit])
