"""``pluralign policy train|eval|experiment|select|report|seeds|aggregate``: NP-DPO steerable
policies, their DPO baselines and the in-context-learning baseline.

Selection discipline (issue 16): ``select`` tunes on validation only (the test split sealed),
``report`` (also run by ``eval`` and ``experiment``) is the one reader of the test split, with
test tasks drawn from the config's ``report.seed``; ``seeds`` runs both for several seeds and
writes the tables with 95 % intervals.

The YAML config has the sections of :class:`pluralign.policies.np_dpo.experiment.ExperimentConfig`
(data, task, policy, train, baselines, eval, behaviour); see docs/np-dpo.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)
METHODS = ("np-dpo", "btl-dpo", "type-dpo")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _config(path: Optional[Path], steps: Optional[int] = None):
    import dataclasses

    from ..policies.np_dpo.experiment import ExperimentConfig
    from ..train.config import ConfigError

    if path is not None and not path.exists():
        _fail(f"{path}: no such config file")
    try:
        cfg = ExperimentConfig.from_yaml(path)
        if steps is not None:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=steps))
    except (ConfigError, ValueError) as err:
        _fail(str(err))
    return cfg


def _threads(n: Optional[int]) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


@app.command("train")
def train(
    out: Path = typer.Option(..., "--out", help="Run folder: best/, last/, log.jsonl."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (docs/np-dpo.md)."),
    method: str = typer.Option("np-dpo", "--method", help="np-dpo, btl-dpo or type-dpo."),
    user_type: Optional[int] = typer.Option(None, "--user-type", help="The user type of type-dpo."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override the number of optimiser steps."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Train one policy (resumes from OUT/last when it exists)."""
    from ..policies.np_dpo.experiment import prepare_experiment, train_method

    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "type-dpo" and user_type is None:
        _fail("--method type-dpo needs --user-type")
    _threads(threads)
    cfg = _config(config)
    try:
        prep = prepare_experiment(cfg, splits=("train", "validation") if method == "np-dpo" else ("train",))
        train_method(cfg, prep, method, out, user_type=user_type, max_steps=steps, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(f"policy saved in {out / 'best'}")


@app.command("select")
def select_cmd(
    out: Path = typer.Option(..., "--out", help="Run folder: np-dpo/, baselines, selection.json."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (docs/np-dpo.md)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Tune on validation users only (selection.grid, checkpoints); the test split stays sealed."""
    from ..policies.np_dpo.protocol import select, tuning_view
    from ..policies.selection import sealed

    _threads(threads)
    cfg = _config(config)
    try:
        select(sealed(cfg), tuning_view(cfg), out, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(f"selection in {out / 'selection.json'}")


@app.command("report")
def report_cmd(
    run: Path = typer.Option(..., "--run", help="Folder written by `pluralign policy select`."),
    config: Optional[Path] = typer.Option(None, "--config", help="The experiment YAML selection ran with."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """The test evaluation (report section): accuracy vs N^C per type, baselines, ICL, steered answers."""
    from ..policies.np_dpo.protocol import report

    _threads(threads)
    cfg = _config(config)
    try:
        report(cfg, run, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(f"results in {run}: results.json, results.csv, accuracy_per_type.png")


@app.command("eval")
def evaluate(
    run: Path = typer.Option(..., "--run", help="Folder written by `pluralign policy select` / `experiment`."),
    config: Optional[Path] = typer.Option(None, "--config", help="The experiment YAML selection ran with."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """The same as `pluralign policy report` (the only reader of the test split)."""
    report_cmd(run=run, config=config, threads=threads)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        _fail(f"--seeds wants comma-separated integers, got {text!r}")
    return seeds


@app.command("seeds")
def seeds_cmd(
    out: Path = typer.Option(..., "--out", help="Folder: seed-<s>/ per seed, table.json/.md/_*.csv."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (docs/np-dpo.md)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds (training seed and user draw)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """select + report for every seed, then the mean and 95 % intervals over seeds."""
    from ..policies.np_dpo.multiseed import run_seeds

    _threads(threads)
    cfg = _config(config)
    try:
        res = run_seeds(cfg, _seed_list(seeds), out, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo((Path(res["paths"]["md"])).read_text())


@app.command("aggregate")
def aggregate_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders with results.json (one per seed)."),
    out: Path = typer.Option(..., "--out", help="Where table.json/.md/_*.csv go."),
) -> None:
    """Tables with 95 % intervals over already-reported seeds."""
    from ..policies.np_dpo.multiseed import aggregate

    try:
        res = aggregate(runs, out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(Path(res["paths"]["md"]).read_text())


@app.command("experiment")
def experiment(
    out: Path = typer.Option(..., "--out", help="Experiment folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (docs/np-dpo.md)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """select (validation) then report (test) for one seed: the end-to-end run of docs/np-dpo.md."""
    from ..policies.np_dpo.experiment import run_experiment

    _threads(threads)
    cfg = _config(config)
    try:
        run_experiment(cfg, out, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
