"""``pluralign data``: synthesise, validate and inspect preference files (work in progress)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
