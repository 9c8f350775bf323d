"""One module per subcommand; each parses its options and calls one function.

Each command's module is imported when that command runs (or help lists them): `heaptrace
run` does not pay for the analysis and rendering modules the other commands import before
its target can start (bench/startup.py)."""

import importlib
from typing import Dict, Tuple

import click

# command name -> (module, function), in the order help lists them
COMMANDS: Dict[str, Tuple[str, str]] = {
    "run": ("run", "run"),
    "histogram": ("histogram", "histogram"),
    "flame": ("flame", "flame"),
    "diff": ("diff", "diff"),
    "timeline": ("timeline", "timeline"),
    "report": ("report", "report"),
    "export": ("export", "export_"),
    "import": ("import_", "import_"),
    "symbolize": ("symbolize", "symbolize"),
    "doctor": ("doctor", "doctor"),
}


def load(name: str) -> click.Command:
    module, attr = COMMANDS[name]
    command = getattr(importlib.import_module(f"heaptrace.commands.{module}"), attr)
    assert command.name == name, (command.name, name)
    return command


class LazyGroup(click.Group):
    """A click group whose commands are imported when one of them is asked for."""

    def list_commands(self, ctx: click.Context) -> list:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> "click.Command | None":
        return load(cmd_name) if cmd_name in COMMANDS else None
