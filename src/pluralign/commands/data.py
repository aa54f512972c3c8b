"""``pluralign data``: synthesise, validate and inspect preference files."""

from __future__ import annotations

import inspect as _inspect
import json
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Generate, validate and inspect preference data (JSONL or Parquet).")

# CLI option name -> generator keyword
_PARAMS = {"pairs": "n_pairs", "seed": "seed", "rho": "rho", "noise": "noise", "conflict_rate": "conflict_rate",
           "low": "low", "high": "high", "k": "k", "users": "n_users", "pairs_per_user": "pairs_per_user",
           "alpha": "alpha", "modes": "m", "dim": "dim", "sigma": "sigma", "beta": "beta",
           "options": "n_options"}


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _read_or_report(file: Path):
    """Records of ``file``, or every problem (file, line, field) on stderr and exit 1."""
    from ..data.io import read_records
    from ..data.records import RecordValidationError

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        return read_records(file)
    except RecordValidationError as err:
        for p in err.problems:
            typer.echo(str(p), err=True)
        _fail(f"{file}: {len(err.problems)} problem(s); nothing was loaded")
    except ValueError as err:
        _fail(str(err))


@app.command("list")
def list_generators() -> None:
    """List the synthetic-data generators and their parameters (with defaults)."""
    from ..data.synthetic import GENERATORS

    flag = {v: k.replace("_", "-") for k, v in _PARAMS.items()}
    for name, fn in GENERATORS.items():
        sig = _inspect.signature(fn)
        params = ", ".join(f"--{flag.get(p, p)}={v.default}" for p, v in sig.parameters.items() if p != "split")
        typer.echo(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
        typer.echo(f"    {params}")
    from ..data import builtin

    typer.echo("built-in text sets (`pluralign data text NAME --out FILE`):")
    for name, description in builtin.available().items():
        typer.echo(f"  {name}: {description}")


@app.command()
def synth(
    generator: str = typer.Argument(..., help="Generator name (see `pluralign data list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file, .jsonl or .parquet (written atomically)."),
    pairs: Optional[int] = typer.Option(None, help="Number of distinct option pairs (paper: 20000)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    rho: Optional[float] = typer.Option(None, help="Correlation between attribute scores (example43, kmode, simplex)."),
    noise: Optional[float] = typer.Option(None, help="Fraction of labels flipped at random."),
    conflict_rate: Optional[float] = typer.Option(None, help="Target fraction of pairs the user types disagree on."),
    low: Optional[float] = typer.Option(None, help="Lower end of the option range (example41, vpl-didactic)."),
    high: Optional[float] = typer.Option(None, help="Upper end of the option range (example41, vpl-didactic)."),
    k: Optional[int] = typer.Option(None, help="Number of attributes / user modes (kmode, simplex)."),
    users: Optional[int] = typer.Option(None, help="Number of continuous users (simplex)."),
    pairs_per_user: Optional[int] = typer.Option(None, help="Pairs each continuous user labels (simplex)."),
    alpha: Optional[float] = typer.Option(None, help="Dirichlet concentration of user weights (simplex)."),
    modes: Optional[int] = typer.Option(None, help="Number of annotators M (vpl-didactic)."),
    dim: Optional[int] = typer.Option(None, help="Option dimension (vpl-didactic)."),
    sigma: Optional[float] = typer.Option(None, help="Width of each annotator's Gaussian bump (vpl-didactic)."),
    beta: Optional[float] = typer.Option(None, help="Bradley–Terry inverse temperature (vpl-didactic)."),
    options: Optional[int] = typer.Option(None, help="Size of the option pool pairs are drawn from (kmode)."),
    split: bool = typer.Option(True, help="Assign train/validation/test by pair (50/25/25, the paper's 10k/5k/5k)."),
    info: Optional[Path] = typer.Option(None, help="Also write the generator's info (parameters, conflict rate) as JSON."),
) -> None:
    """Generate synthetic preference data from simulated users and write it to --out."""
    from ..data.io import write_records
    from ..data.synthetic import GENERATORS

    if generator not in GENERATORS:
        _fail(f"unknown generator {generator!r}; choose one of: {', '.join(GENERATORS)}")
    fn = GENERATORS[generator]
    accepted = set(_inspect.signature(fn).parameters)
    given = {"pairs": pairs, "seed": seed, "rho": rho, "noise": noise, "conflict_rate": conflict_rate,
             "low": low, "high": high, "k": k, "users": users, "pairs_per_user": pairs_per_user,
             "alpha": alpha, "modes": modes, "dim": dim, "sigma": sigma, "beta": beta, "options": options}
    kwargs: dict[str, Any] = {}
    for opt, value in given.items():
        if value is None:
            continue
        if _PARAMS[opt] not in accepted:
            _fail(f"generator {generator!r} does not take --{opt.replace('_', '-')}; "
                  f"see `pluralign data list`", code=2)
        kwargs[_PARAMS[opt]] = value
    if not split:
        kwargs["split"] = None
    try:
        records, meta = fn(**kwargs)
    except ValueError as err:
        _fail(f"{generator}: {err}", code=2)
    path = write_records(records, out)
    if info is not None:
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps(meta, indent=2) + "\n")
    conf = meta.get("conflict_rate")
    typer.echo(f"wrote {len(records)} records ({meta.get('n_pairs')} pairs, conflict rate between user types "
               f"{conf:.4f}, {meta.get('flipped', 0)} labels flipped) to {path}")


def _print_summary(summary: dict) -> None:
    rows = [("records", summary["n_records"])]
    if summary["n_records"]:
        dim = f" (dim {summary['option_dim']})" if summary.get("option_dim") else ""
        ppu = summary["pairs_per_user"]
        rows += [("options", f"{summary['option_kind']}{dim}"),
                 ("users", summary["n_users"]),
                 ("pairs per user", f"min {ppu['min']}, median {ppu['median']:g}, max {ppu['max']}"),
                 ("distinct pairs", summary.get("n_pairs") or "unknown (no pair_id)"),
                 ("distinct prompts", summary["n_prompts"])]
        if summary.get("attributes"):
            rows.append(("attributes", ", ".join(summary["attributes"])))
        types = summary.get("user_types")
        if isinstance(types, dict):
            rows.append(("user types", "; ".join(f"z={t}: {v['users']} user(s), {v['records']} records"
                                                 for t, v in types.items())))
            rate = summary.get("type_conflict_rate")
            rows.append(("conflict rate (types)", "n/a (no pair labelled by two types)" if rate is None else
                         f"{rate:.4f} over {summary['pairs_labelled_by_2plus_types']} pairs"))
        elif types:
            rows.append(("user types", types))
        else:
            rows.append(("user types", "unknown (no user_latent)"))
        rows.append(("flipped labels", summary["flipped"]))
        order = {"train": 0, "validation": 1, "test": 2}
        for name, s in sorted(summary["splits"].items(), key=lambda kv: order.get(kv[0], 3)):
            rows.append((f"split {name}", f"{s['records']} records, {s['pairs']} pairs"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


@app.command("text")
def text(
    name: str = typer.Argument("corpus-2mode", help="A built-in text set (see `pluralign data list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file, .jsonl or .parquet (written atomically)."),
    users_per_type: Optional[int] = typer.Option(None, help="Simulated users of each type."),
    pairs_per_user: Optional[int] = typer.Option(None, help="Pairs each user labels."),
    seed: int = typer.Option(0, help="Random seed."),
    split: bool = typer.Option(True, help="Keep the built-in train/validation/test column (--no-split: "
                               "leave it out, and `pluralign train` makes a seeded split by prompt)."),
) -> None:
    """Write a built-in text preference set (TRL format + user_id, user_latent) to a file:
    a text file to try `pluralign train --data FILE` on."""
    from ..data import builtin
    from ..data.io import write_records

    if name not in builtin.REGISTRY:
        _fail(f"unknown built-in text set {name!r}; choose one of: {', '.join(builtin.REGISTRY)}")
    if out.suffix.lower() not in (".jsonl", ".parquet"):
        _fail(f"--out {out}: unknown extension {out.suffix!r} (expected .jsonl or .parquet)")
    for option, value in (("--users-per-type", users_per_type), ("--pairs-per-user", pairs_per_user)):
        if value is not None and value < 1:
            _fail(f"{option} must be at least 1, got {value}")
    kwargs: dict[str, Any] = {"seed": seed}
    if users_per_type is not None:
        kwargs["users_per_group" if name.startswith("pets") else "users_per_type"] = users_per_type
    if pairs_per_user is not None:
        kwargs["pairs_per_user"] = pairs_per_user
    try:
        records = builtin.load(name, **kwargs)
    except ValueError as err:
        _fail(f"{name}: {err}")
    if not split:
        records = [r.replace(split=None) for r in records]
    write_records(records, out)
    users = len({r.user_id for r in records})
    typer.echo(f"wrote {len(records)} text pairs of {users} users ({name}) to {out}")
    _warn_few_pairs(records, out)


def _warn_few_pairs(records: list, out: Path) -> None:
    """Say when `pluralign train`'s default tasks will not fit these users (the file is still
    valid: a --config with smaller tasks trains on it)."""
    from ..data.splits import by_split, how_split, split_records
    from ..train.rewards import TaskConfig
    from ..train.run import check_pairs_per_user

    parts = by_split(split_records(records))
    empty = [name for name in ("train", "validation") if not parts[name]]
    if empty:
        notes = [f"{out}: the {empty[0]} split `pluralign train` makes of it is empty "
                 f"({how_split(records, (0.5, 0.25, 0.25), 0)}); keep the built-in split (no --no-split)"]
    else:
        try:
            notes = check_pairs_per_user(parts, TaskConfig(), str(out))
        except ValueError as err:
            notes = [f"{err} (or raise --pairs-per-user)"]
    for note in notes:
        typer.echo(f"warning: {note}", err=True)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="A .jsonl or .parquet preference file."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a preference file: users, pairs per user, user types, conflict rate, splits.

    An invalid file lists every problem (file, line, field) and exits with status 1.
    """
    from ..data.tables import describe

    summary = describe(_read_or_report(file))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


@app.command()
def validate(file: Path = typer.Argument(..., help="A .jsonl or .parquet preference file.")) -> None:
    """Check every row of a preference file; list every problem (file, line, field), exit 1 if any."""
    records = _read_or_report(file)
    typer.echo(f"{file}: {len(records)} valid records")
