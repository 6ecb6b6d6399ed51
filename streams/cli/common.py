"""What every command shares: the consoles, the one-line error, notices, the settings
from the flags, and the tables' widths and severity colours.

The consoles are read as `common.console` and `common.out` by the other modules, so that
one replaced here (a test's) is the one every command writes to."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from streams.config import Settings


class _Console(Console):
    """rich's console, but a reader that stops (`| head`) ends the command as the other
    output does (`main`): quietly, exit 0, not rich's exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


console = _Console(stderr=True)
out = _Console()


class CliError(Exception):
    """An error to show as one line, then exit 1."""


def notice(message: str) -> None:
    """A notice on stderr (rich markup), its lines unwrapped: rich wraps at 80 columns when
    stderr is not a terminal (a log), which split URLs and commands in two."""
    console.print(message, soft_wrap=True)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, field in (
        ("broker", "broker"),
        ("web_port", "web_port"),
        ("rules", "rules"),
        ("partitions", "partitions"),
        ("replication_factor", "replication_factor"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    return Settings(**overrides)


def wide_console() -> Console:
    """The table console: as wide as the terminal, or wide enough when piped."""
    return out if out.is_terminal else _Console(width=200)


def fits(console: Console, renderable: Any) -> bool:
    """Whether `renderable` (a table) is drawn whole at the console's width: rich would
    otherwise cut every column but the unwrappable ones to "…" to make it fit."""
    from rich.measure import Measurement

    unbounded = console.options.update_width(100_000)  # its natural width, not the console's
    return Measurement.get(console, unbounded, renderable).maximum <= console.width


#: rich styles of a severity, in the incidents table and the alert lines
SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
}
