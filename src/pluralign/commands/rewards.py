"""CLI commands (work in progress: filled in by the issue that owns this group)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


def train() -> None:
    """Train a reward model (not yet implemented)."""
    raise typer.Exit("not implemented yet")


def evaluate() -> None:
    """Evaluate a reward model (not yet implemented)."""
    raise typer.Exit("not implemented yet")
