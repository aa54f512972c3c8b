"""``pluralign rank``: rank candidate responses for one person from a few of their choices, with
a run written by ``pluralign train`` (:class:`pluralign.Personalizer`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Optional

import typer


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def read_choices(file: Path, user: str | None) -> tuple[list[Any], list[int]]:
    """One person's choices from a JSONL/Parquet file of ``prompt``/``chosen``/``rejected`` rows
    (``user_id`` optional; ``--user`` picks one person from a file of several), with the line
    (JSONL) or row (Parquet) of each, for messages."""
    from ..data.io import read_records, record_lines
    from ..data.records import RecordValidationError

    if not file.is_file():
        _fail(f"--choices {file}: no such file")
    try:
        records, problems = read_records(file, defaults={"user_id": "(you)"}), []
    except RecordValidationError as err:
        records, problems = [], err.problems
    except ValueError as err:
        _fail(f"--choices {err}")
    lines = record_lines(file) if records else []
    if problems:
        for p in problems[:50]:
            typer.echo(str(p), err=True)
        _fail(f"--choices {file}: {len(problems)} problem(s)")
    if not records:
        _fail(f"--choices {file}: no choices in the file (leave --choices out for the population's view)")
    users = sorted({r.user_id for r in records})
    if user is not None:
        keep = [i for i, r in enumerate(records) if r.user_id == user]
        if not keep:
            _fail(f"--choices {file} has no choices of --user {user!r} (users: {', '.join(users[:10])})")
        records, lines = [records[i] for i in keep], [lines[i] for i in keep]
    elif len(users) > 1:
        _fail(f"--choices {file} holds the choices of {len(users)} users ({', '.join(users[:5])}"
              f"{' ...' if len(users) > 5 else ''}); pick one with --user")
    return records, lines


def read_candidates(file: Path) -> tuple[list[Any], list[str]]:
    """Candidates from a ``.txt`` file (one per line) or a ``.jsonl`` file (each line a JSON
    string, a vector, or an object with ``response``/``text``/``candidate``), with where each
    came from (``FILE:LINE``)."""
    if not file.is_file():
        _fail(f"--candidates {file}: no such file")
    out, where = [], []
    for line_no, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        where.append(f"{file}:{line_no}")
        if file.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
            out.append(raw)
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            _fail(f"{file}:{line_no}: invalid JSON: {err.msg}")
        if isinstance(value, dict):
            key = next((k for k in ("response", "text", "candidate") if k in value), None)
            if key is None:
                _fail(f"{file}:{line_no}: expected a field 'response', 'text' or 'candidate'")
            value = value[key]
        if isinstance(value, str) and not value.strip():
            _fail(f"{file}:{line_no}: empty candidate")
        out.append(value)
    if not out:
        _fail(f"--candidates {file}: no candidates in the file")
    return out, where


def _vector_or_text(value: str) -> Any:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, list) else value


def _short(candidate: Any, width: int = 90) -> str:
    if not isinstance(candidate, str):
        return json.dumps(candidate)
    text = " ".join(candidate.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def rank(
    run: Path = typer.Argument(..., help="Run folder written by `pluralign train`."),
    choices: Optional[Path] = typer.Option(None, "--choices", help="Your choices: JSONL/Parquet rows with "
                                           "prompt, chosen, rejected (none: the population's view)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="The prompt the candidates answer."),
    candidates: Optional[Path] = typer.Option(None, "--candidates", help=".txt (one per line) or .jsonl file."),
    candidate: Optional[list[str]] = typer.Option(None, "--candidate", help="A candidate (repeatable)."),
    user: Optional[str] = typer.Option(None, "--user", help="The user_id to take from a --choices file of several."),
    as_json: bool = typer.Option(False, "--json", help="Print the ranking as JSON."),
) -> None:
    """Rank candidates for one person, best first, with the model's scores r(y | your choices)."""
    from ..personalizer import Personalizer

    cands, sources = read_candidates(candidates) if candidates else ([], [])
    cands += list(candidate or [])
    sources += [f"--candidate #{k}" for k in range(1, len(candidate or []) + 1)]
    if not cands:
        _fail("no candidates: give --candidates FILE and/or --candidate TEXT")
    mine, lines = read_choices(choices, user) if choices else ([], [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            p = Personalizer.from_pretrained(run)
            if p.features.is_text and prompt is None:
                _fail("--prompt is needed: this run reads prompt + response texts")
            if not p.features.is_text:  # numeric runs: --candidate "[0.5, 1.0]" is a vector
                n = len(candidate or [])
                cands[len(cands) - n:] = [_vector_or_text(c) for c in cands[len(cands) - n:]]
            state = p.user(mine, lambda i, name: f"{choices}:{lines[i]}: field {name!r}")
            p.prepared(prompt, cands, lambda i: sources[i])  # checked (and kept) with their lines
            ranked = p.rank(prompt, cands, user=state)
        except (ValueError, FileNotFoundError) as err:
            _fail(str(err))
    for w in caught:
        if issubclass(w.category, UserWarning):
            typer.echo(f"warning: {w.message}", err=True)
    same = not p.has_latent
    if as_json:
        typer.echo(json.dumps({
            "run": str(run), "model": p.model_name, "personalized": not same, "n_choices": state.n_choices,
            "prompt": prompt, "ranking": [{"rank": k + 1, "index": r.index, "candidate": r.candidate,
                                           "score": r.score, "spread": r.spread} for k, r in enumerate(ranked)]},
            indent=2))
        return
    who = f"from your {state.n_choices} choice(s)" if state.n_choices else "with no choices (the population's view)"
    typer.echo(f"{p.model_name} ranking {who}:" if not same else
               f"{p.model_name} ranks the same for everyone (it has no user representation; "
               f"your {state.n_choices} choice(s) do not change it):")
    spread = any(r.spread is not None for r in ranked)
    for k, r in enumerate(ranked, start=1):
        typer.echo(f"{k:>3}. {r.score:+8.3f}" + (f" ± {r.spread:.3f}" if spread else "")
                   + f"  [{r.index}] {_short(r.candidate)}")
    if spread:
        typer.echo("± : posterior spread of the score (VPL: std of r(y | z) over z ~ q(z | your choices))")
