"""The package's layers, checked from its imports: capture -> recording -> analysis -> render, with
a thin CLI on top. A module may not import a layer that sits above it or beside it on another
path of the data flow."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

PACKAGE = Path(__file__).resolve().parents[2] / "heaptrace"

# importer's package -> packages it must never import (module-level or inside functions)
FORBIDDEN = {
    "analysis": {"render", "commands", "capture", "backends", "importers", "cli"},
    "render": {"commands", "capture", "backends", "importers", "cli"},
    "formats": {"commands", "capture", "backends", "importers", "render", "cli"},
    "stacks": {"commands", "capture", "analysis", "render", "importers", "cli"},
    "backends": {"commands", "capture", "importers", "analysis", "render", "cli"},
    "importers": {"commands", "capture", "backends", "render", "cli"},
    "capture": {"commands", "importers", "cli"},
    "commands": {"cli"},
    # the top-level modules everything else builds on
    "events": {"*"}, "units": {"*"}, "errors": {"*"},
    "recording": {"*"},
}
# what the base modules may import: each other only
BASE = {"events", "units", "errors", "recording", "__init__"}


def _layer(module: Path, package: Path) -> str:
    return module.relative_to(package).with_suffix("").parts[0]


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "heaptrace":  # from heaptrace import x
                for alias in node.names:
                    yield node.lineno, f"heaptrace.{alias.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _violations(package: Path = PACKAGE) -> Iterator[str]:
    for path in sorted(package.rglob("*.py")):
        layer = _layer(path, package)
        rel = path.relative_to(package.parent)
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top == "bcc" and layer != "backends":
                yield f"{rel}:{line}: imports bcc outside backends/"
            if top != "heaptrace" or module == "heaptrace":
                continue
            target = module.split(".")[1]
            forbidden = FORBIDDEN.get(layer, set())
            if "*" in forbidden and target not in BASE:
                yield f"{rel}:{line}: base module imports {module}"
            elif target in forbidden:
                yield f"{rel}:{line}: {layer} imports {module}"


def test_no_module_imports_against_the_layers() -> None:
    assert list(_violations()) == []


def test_the_top_of_the_package_keeps_only_the_base_modules() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top == {"__init__", "__main__", "cli", "errors", "events", "units"}
    assert (PACKAGE / "recording" / "__init__.py").is_file()  # the file format, a package


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    (tmp_path / "heaptrace" / "analysis").mkdir(parents=True)
    (tmp_path / "heaptrace" / "events.py").write_text("from heaptrace import cli\n")
    bad = tmp_path / "heaptrace" / "analysis" / "bad.py"
    bad.write_text("from heaptrace.render.svg import escape\nimport bcc\n")
    found = list(_violations(tmp_path / "heaptrace"))
    assert any("base module imports heaptrace.cli" in v for v in found)
    assert any("analysis imports heaptrace.render.svg" in v for v in found)
    assert any("imports bcc outside backends/" in v for v in found)
