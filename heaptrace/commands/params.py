"""Option types every command shares: numbers that must be finite and within a range, so
that `nan`, `inf` or a negative size is one usage line, never a traceback further down."""

from __future__ import annotations

import math
from typing import Any, Optional

import click


class Finite(click.ParamType):
    """A finite float in [low, high] (`low` excluded with low_open): click's FloatRange lets
    nan and inf through."""

    name = "number"

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, unit: str = "") -> None:
        self.low, self.high, self.low_open, self.unit = low, high, low_open, unit

    def convert(self, value: Any, param: Optional[click.Parameter],
                ctx: Optional[click.Context]) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            word = "more than" if self.low_open else "at least"
            self.fail(f"must be {word} {self.low:g}{self.unit}, not {value}", param, ctx)
        if self.high is not None and number > self.high:
            self.fail(f"must be at most {self.high:g}{self.unit}, not {value}", param, ctx)
        return number


SECONDS_INTO_RUN = Finite(0, unit=" seconds")
POSITIVE_SECONDS = Finite(0, low_open=True, unit=" seconds")
PID = click.IntRange(1)  # a process of a recording: pid 0 is the kernel's idle task


def minwidth(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """--minwidth: pixels, or N% of the drawing width; finite and not negative."""
    text = str(value).strip()
    try:
        amount = float(text.removesuffix("%"))
    except ValueError:
        raise click.BadParameter(f"takes pixels or a percentage, not {text!r}") from None
    if not math.isfinite(amount) or amount < 0:
        raise click.BadParameter(f"takes a finite, non-negative width, not {text!r}")
    return text
