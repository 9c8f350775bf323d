"""Human-readable byte counts, shared by every view."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human(nbytes: int) -> str:
    """Binary units with one decimal: 512 B, 1.2 KiB, 3.0 MiB (sign kept)."""
    value, unit = float(abs(nbytes)), 0
    while value >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    sign = "-" if nbytes < 0 else ""
    return f"{sign}{int(value)} B" if unit == 0 else f"{sign}{value:.1f} {UNITS[unit]}"
