"""Build, record and draw the four stories' examples (docs/examples/ is its output).

    python examples/render.py STORY... [--out DIR] [--pages]

For each story: run the example program under `heaptrace run` (one recording per variant), then
write its views into DIR: flame graphs, diffs and timelines as SVG, the report, histogram and the
program's own output as text. With --pages, also fill examples/pages/STORY.md with those texts
and pictures and write DIR/STORY.md. Nothing is drawn by hand: rerun it (`make example-pages`)
when heaptrace learns something and the pages show it.

A view whose option the installed heaptrace does not have yet (say `flame --event resident`) is
skipped, and its page slot says so, so the script runs on any version of main.
Needs root (heaptrace run) and the example programs built (`make -C examples`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BUILD = EXAMPLES / "build"
PAGES = EXAMPLES / "pages"
HEAPTRACE = os.environ.get("HEAPTRACE", str(ROOT / ".venv" / "bin" / "heaptrace"))
PYTHON = "/usr/bin/python3"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


STORY_OF = {
    "before": "pkgin",
    "after": "pkgin",
    "glibc": "venice",
    "jemalloc": "venice",
    "list": "python",
    "ring": "python",
    "liquidsoap": "liquidsoap",
}


@dataclass
class Run:
    """One recording: NAME.db from CMD (argv relative to the repository root)."""

    name: str
    cmd: list[str]


@dataclass
class View:
    """One output file: heaptrace ARGS > FILE. `needs` is text the subcommand's --help must
    contain for the view to exist (an option not on main yet); without it the view is skipped."""

    file: str
    args: list[str]
    needs: str = ""
    grep: str = ""  # keep only the output's lines containing this


@dataclass
class Story:
    name: str
    runs: list[Run]
    views: list[View] = field(default_factory=list)


def stories(build: Path) -> dict[str, Story]:
    """Each story's runs and views. Recordings go to BUILD/STORY/RUN.db, the programs are in
    examples/build/bin/ (make -C examples)."""

    def d(run: str) -> str:
        return str(build / STORY_OF[run] / f"{run}.db")

    # Relative to the repository (the runs' working directory), as the reports print them.
    grow = "examples/grow"
    venice = "examples/build/bin/venice"
    liquidsoap = "examples/build/bin/liquidsoap"
    audiostream = "examples/audiostream.py"
    return {
        "pkgin": Story(
            "pkgin",
            [Run("before", [grow]), Run("after", [grow, "--stream"])],
            [
                View("pkgin-histogram.txt", ["histogram", d("before"), "--event", "mremap"]),
                View("pkgin-report.txt", ["report", d("before"), "--top", "3"]),
                View(
                    "pkgin-flame.svg",
                    ["flame", d("before"), "--title", "pkgin in miniature: heap growth by stack"],
                ),
                View(
                    "pkgin-diff.svg",
                    ["diff", d("before"), d("after"), "--title", "buffered download vs --stream"],
                ),
                View(
                    "pkgin-diff-negate.svg",
                    ["diff", d("before"), d("after"), "--negate", "--title", "what went away"],
                ),
                View(
                    "pkgin-diff-mremap.txt",
                    ["diff", d("before"), d("after"), "--folded"],
                    grep="mremap",
                ),
                View("pkgin-timeline.svg", ["timeline", d("before"), "--svg"]),
            ],
        ),
        "venice": Story(
            "venice",
            [
                Run("glibc", [venice]),
                Run("jemalloc", ["env", f"LD_PRELOAD={JEMALLOC}", venice]),
            ],
            [
                View("venice-glibc-timeline.svg", ["timeline", d("glibc"), "--svg"]),
                View("venice-jemalloc-timeline.svg", ["timeline", d("jemalloc"), "--svg"]),
                View("venice-glibc-timeline.txt", ["timeline", d("glibc"), "--interval", "0.25"]),
                View(
                    "venice-jemalloc-timeline.txt",
                    ["timeline", d("jemalloc"), "--interval", "0.25"],
                ),
                View("venice-glibc-report.txt", ["report", d("glibc"), "--top", "3"]),
                View("venice-jemalloc-report.txt", ["report", d("jemalloc"), "--top", "3"]),
                View(
                    "venice-glibc-held.svg",
                    [
                        "flame",
                        d("glibc"),
                        "--retained",
                        "--title",
                        "glibc: held at exit, by allocating stack",
                    ],
                ),
                View(
                    "venice-jemalloc-madvise.svg",
                    [
                        "flame",
                        d("jemalloc"),
                        "--event",
                        "madvise",
                        "--title",
                        "jemalloc: pages given back with madvise, by stack",
                    ],
                ),
                View(
                    "venice-glibc-resident.svg",
                    [
                        "flame",
                        d("glibc"),
                        "--event",
                        "resident",
                        "--title",
                        "glibc: resident pages by stack",
                    ],
                    needs="resident",
                ),
                View(
                    "venice-jemalloc-resident.svg",
                    [
                        "flame",
                        d("jemalloc"),
                        "--event",
                        "resident",
                        "--title",
                        "jemalloc: resident pages by stack",
                    ],
                    needs="resident",
                ),
            ],
        ),
        "python": Story(
            "python",
            [
                Run("list", [PYTHON, audiostream, "--list"]),
                Run("ring", [PYTHON, audiostream, "--ring"]),
            ],
            [
                View("python-list-timeline.svg", ["timeline", d("list"), "--svg"]),
                View("python-ring-timeline.svg", ["timeline", d("ring"), "--svg"]),
                View("python-list-report.txt", ["report", d("list"), "--top", "3"]),
                View("python-ring-report.txt", ["report", d("ring"), "--top", "3"]),
                View(
                    "python-list-brk.svg",
                    [
                        "flame",
                        d("list"),
                        "--event",
                        "brk",
                        "--title",
                        "list of bytes: heap (brk) growth by stack",
                    ],
                ),
                View(
                    "python-list-held.svg",
                    [
                        "flame",
                        d("list"),
                        "--retained",
                        "--title",
                        "list of bytes: held at exit, by stack",
                    ],
                ),
                View(
                    "python-diff.svg",
                    ["diff", d("list"), d("ring"), "--title", "list of bytes vs bytearray ring"],
                ),
            ],
        ),
        "liquidsoap": Story(
            "liquidsoap",
            [Run("liquidsoap", [liquidsoap, str(build / "liquidsoap" / "library.data")])],
            [
                View("liquidsoap-report.txt", ["report", d("liquidsoap"), "--top", "4"]),
                View(
                    "liquidsoap-flame.svg",
                    [
                        "flame",
                        d("liquidsoap"),
                        "--title",
                        "liquidsoap in miniature: memory taken, by stack",
                    ],
                ),
                View(
                    "liquidsoap-mmap.svg",
                    [
                        "flame",
                        d("liquidsoap"),
                        "--event",
                        "mmap",
                        "--title",
                        "every mapping (file, shared and heap), by stack",
                    ],
                ),
                View(
                    "liquidsoap-held.svg",
                    ["flame", d("liquidsoap"), "--retained", "--title", "held at exit, by stack"],
                ),
                View("liquidsoap-timeline.svg", ["timeline", d("liquidsoap"), "--svg"]),
                View(
                    "liquidsoap-resident.svg",
                    [
                        "flame",
                        d("liquidsoap"),
                        "--event",
                        "resident",
                        "--title",
                        "resident pages by stack",
                    ],
                    needs="resident",
                ),
            ],
        ),
    }


def fail(message: str) -> None:
    print(f"render: {message}", file=sys.stderr)
    sys.exit(1)


def supports(subcommand: str, text: str) -> bool:
    help_text = subprocess.run(
        [HEAPTRACE, subcommand, "--help"], capture_output=True, text=True
    ).stdout
    return text in help_text


def record(story: Story, build: Path, out: Path) -> None:
    for run in story.runs:
        target = build / story.name / f"{run.name}.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        print(f"render: recording {story.name}/{run.name}", file=sys.stderr)
        proc = subprocess.run(
            [HEAPTRACE, "run", "-o", str(target), "--", *run.cmd],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            fail(f"heaptrace run -- {' '.join(run.cmd)} exited {proc.returncode}:\n{proc.stderr}")
        # What the program itself printed: its own RSS measurements.
        (out / f"{story.name}-{run.name}-output.txt").write_text(proc.stdout)
        (out / f"{story.name}-{run.name}-run.txt").write_text(relative(proc.stderr))


def relative(text: str) -> str:
    """Paths in outputs as a reader's checkout would print them."""
    return text.replace(str(ROOT) + "/", "")


def draw(story: Story, out: Path) -> set[str]:
    drawn = set()
    for view in story.views:
        if view.needs and not supports(view.args[0], view.needs):
            print(
                f"render: {view.file}: this heaptrace has no {view.needs!r} yet, skipped",
                file=sys.stderr,
            )
            (out / view.file).unlink(missing_ok=True)
            continue
        proc = subprocess.run([HEAPTRACE, *view.args], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            fail(f"heaptrace {' '.join(view.args)} exited {proc.returncode}: {proc.stderr.strip()}")
        text = relative(proc.stdout)
        if view.grep:
            text = "".join(line for line in text.splitlines(True) if view.grep in line)
        (out / view.file).write_text(text)
        drawn.add(view.file)
    return drawn


def fill(story: Story, out: Path, drawn: set[str]) -> None:
    """examples/pages/STORY.md -> OUT/STORY.md: {{file.txt}} becomes that text, {{file.svg}}
    that picture, or a line saying it is not drawn yet."""
    template = (PAGES / f"{story.name}.md").read_text()

    def slot(match: re.Match[str]) -> str:
        name = match.group(1)
        path = out / name
        if name.endswith(".svg"):
            if name in drawn:
                return f"[![{name}]({name})]({name})"
            return f"*(not drawn yet: this version of heaptrace cannot draw `{name}`)*"
        if not path.exists():
            return f"*(not written yet: this version of heaptrace cannot write `{name}`)*"
        return "```\n" + path.read_text().rstrip("\n") + "\n```"

    (out / f"{story.name}.md").write_text(re.sub(r"\{\{([\w.-]+)\}\}", slot, template))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stories", nargs="+", metavar="STORY")
    parser.add_argument(
        "--out", type=Path, help="where the views go (default examples/build/STORY)"
    )
    parser.add_argument(
        "--build", type=Path, default=BUILD, help="where recordings go (default examples/build)"
    )
    parser.add_argument(
        "--fill-only", action="store_true", help="only rewrite the pages from the views in DIR"
    )
    parser.add_argument("--pages", action="store_true", help="also write DIR/STORY.md")
    args = parser.parse_args()
    if not Path(HEAPTRACE).exists():
        fail(f"{HEAPTRACE} not found: run `make venv` first")
    for name in args.stories:
        build = args.build.resolve()
        out = (args.out or build / name).resolve()
        out.mkdir(parents=True, exist_ok=True)
        story = stories(build).get(name)
        if story is None:
            fail(f"unknown story {name!r} (pkgin, venice, python, liquidsoap)")
        if name == "venice" and not Path(JEMALLOC).exists():
            fail(f"{JEMALLOC} is missing: install libjemalloc2 (make setup does)")
        if args.fill_only:  # the prose changed, the views did not
            fill(story, out, {v.file for v in story.views if (out / v.file).exists()})
            continue
        record(story, build, out)
        drawn = draw(story, out)
        if args.pages:
            fill(story, out, drawn)
        print(f"render: {name}: views in {relative(str(out))}", file=sys.stderr)


if __name__ == "__main__":
    main()
