"""``pluralign generate``: a steered answer from an NP-DPO policy (``--choices``) or a CMPO
policy (``--weights``) (work in progress)."""

from __future__ import annotations

import typer


def generate() -> None:
    """Generate a steered answer (not yet implemented)."""
    raise typer.Exit("not implemented yet")
