"""``pluralign policy train|eval|experiment``: NP-DPO steerable policies and their DPO baselines.

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


@app.command("eval")
def evaluate(
    run: Path = typer.Option(..., "--run", help="Folder with np-dpo/best (and btl-dpo/best, type-dpo-K/best)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (data and eval sections)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where results go (default: RUN)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """Implicit-reward accuracy vs N^C per user type (with baselines) and steered generations."""
    from ..policies.np_dpo.experiment import evaluate_policies, load_run_policies, prepare_experiment

    _threads(threads)
    cfg = _config(config)
    try:
        models = load_run_policies(run)
        prep = prepare_experiment(cfg, splits=("test",))
        evaluate_policies(cfg, prep, models, out or run, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
    typer.echo(f"results in {out or run}: results.json, results.csv, accuracy_per_type.png")


@app.command("experiment")
def experiment(
    out: Path = typer.Option(..., "--out", help="Experiment folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (docs/np-dpo.md)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
) -> None:
    """NP-DPO + BTL-DPO + per-type DPO, then evaluation: the end-to-end run of docs/np-dpo.md."""
    from ..policies.np_dpo.experiment import run_experiment

    _threads(threads)
    cfg = _config(config)
    try:
        run_experiment(cfg, out, log=typer.echo)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))
