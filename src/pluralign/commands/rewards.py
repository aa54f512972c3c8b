"""``pluralign train`` and ``pluralign eval``: reward models on any records file with numeric
options (synthetic data, or text records whose options were replaced by embeddings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)

MODEL_NAMES = ("btl", "dpl", "np-btl", "vpl")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _read(file: Path):
    from ..data.io import read_records
    from ..data.records import RecordValidationError

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        return read_records(file)
    except RecordValidationError as err:
        for p in err.problems[:50]:
            typer.echo(str(p), err=True)
        _fail(f"{file}: {len(err.problems)} problem(s); nothing was loaded")
    except ValueError as err:
        _fail(str(err))


def _context_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"--context-sizes must be comma-separated integers, got {text!r}")
    if not sizes or any(n < 0 for n in sizes):
        _fail(f"--context-sizes must be non-negative integers, got {text!r}")
    return sizes


def train(
    data: Path = typer.Option(..., "--data", help="Records file (.jsonl / .parquet) with numeric options."),
    model: str = typer.Option(..., "--model", help="Reward model: btl, dpl, np-btl or vpl."),
    out: Path = typer.Option(..., "--out", help="Run folder: best/, last/, log.jsonl, run.json."),
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="YAML with sections model, tasks, train (see docs/training.md)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Override train.max_steps (default: a budget that scales with the data; early stopping ends most runs sooner)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the loop, sampler and split seeds."),
    preset: str = typer.Option("tuned", "--preset", help="Defaults for what the config leaves unset: 'tuned' (sum pooling, antisymmetric pair encoder, lr 3e-4, VPL beta_max 0.01, trained to convergence), 'paper' (NP paper App. C.1: mean pooling, lr 1e-4, 2000 steps; VPL beta_max 1) or 'tuned-plain'. See docs/defaults.md."),
) -> None:
    """Train a reward model; resumes from OUT/last when it exists."""
    import dataclasses

    from ..train.config import ConfigError
    from ..train.presets import PRESETS
    from ..train.rewards import RewardTrainConfig, train_reward_model

    if model not in MODEL_NAMES:
        _fail(f"--model must be one of {', '.join(MODEL_NAMES)}, got {model!r}")
    if preset not in PRESETS:
        _fail(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    try:
        cfg = RewardTrainConfig.from_yaml(config, preset=preset) if config else RewardTrainConfig(preset=preset)
        if steps is not None or seed is not None:
            train_cfg = dataclasses.replace(cfg.train, **({"max_steps": steps} if steps is not None else {}),
                                            **({"seed": seed} if seed is not None else {}))
            tasks = dataclasses.replace(cfg.tasks, seed=seed) if seed is not None else cfg.tasks
            cfg = dataclasses.replace(cfg, train=train_cfg, tasks=tasks,
                                      split_seed=seed if seed is not None else cfg.split_seed,
                                      step_budget=cfg.step_budget and steps is None)
    except (ConfigError, ValueError) as err:
        _fail(str(err))
    records = _read(data)
    try:
        _, result = train_reward_model(records, model, cfg, out, data_file=str(data))
    except (ConfigError, ValueError, TypeError) as err:
        _fail(str(err))
    from accelerate import PartialState

    if not PartialState().is_main_process:  # one report per distributed run
        return
    best = ", ".join(f"{k}={v:.4f}" for k, v in result.best_metrics.items())
    typer.echo(f"trained {model} for {result.step} steps"
               + (f" (resumed from step {result.resumed_from})" if result.resumed_from else "")
               + (" (stopped early)" if result.stopped_early else ""))
    typer.echo(f"best validation at step {result.best_step}: {best}")
    typer.echo(f"model: {result.best_dir}   log: {result.log_path}")


def evaluate(
    runs: list[Path] = typer.Argument(..., help="Run folder(s) written by `pluralign train`."),
    data: Path = typer.Option(..., "--data", help="The records file the runs were trained on."),
    context_sizes: str = typer.Option("0,1,3,5,10", "--context-sizes", help="N^C values, comma-separated."),
    out: Path = typer.Option(Path("results.json"), "--out", help="results.json (CSV and PNG beside it)."),
    n_tasks: int = typer.Option(500, "--n-tasks", help="Test tasks per context size."),
    n_target: Optional[int] = typer.Option(None, "--n-target", help="N^T (default: the run's)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate on."),
    seed: int = typer.Option(12345, "--seed", help="Seed of the evaluation tasks."),
    task: Optional[str] = typer.Option(None, "--task", help="Task name in the results (default: data file stem)."),
) -> None:
    """Accuracy on unseen target pairs vs N^C, per user type, with the Bayes line and the
    context-flip / active-unit diagnostics; writes JSON, CSV and PNG and prints a table."""
    from ..checkpoint import CheckpointError
    from ..data.splits import by_split, split_records
    from ..eval.metrics import EvalConfig, EvalData
    from ..eval.plots import plot_accuracy, plot_per_type
    from ..eval.results import evaluate_models, format_table, write_csv, write_json
    from ..rewards import RewardModel
    from ..train.rewards import RUN_FILE, numeric_table

    if split not in ("train", "validation", "test"):
        _fail(f"--split must be train, validation or test, got {split!r}")
    sizes = _context_sizes(context_sizes)
    models, split_keys, targets = {}, set(), set()
    for run in runs:
        meta_path = run / RUN_FILE
        if not meta_path.is_file():
            _fail(f"{run}: no {RUN_FILE}; is it a folder written by `pluralign train`?")
        meta = json.loads(meta_path.read_text())
        cfg = meta["config"]
        split_keys.add((tuple(cfg["split_fractions"]), cfg["split_seed"]))
        targets.add(cfg["tasks"]["n_target"])
        try:
            model = RewardModel.from_pretrained(run / "best")
        except CheckpointError as err:
            _fail(str(err))
        name = meta["model"] if meta["model"] not in models else f"{meta['model']} ({run.name})"
        models[name] = model
    if len(split_keys) > 1:
        _fail(f"the runs were split differently ({sorted(split_keys)}); evaluate them separately")
    fractions, split_seed = split_keys.pop()
    records = _read(data)
    parts = by_split(split_records(records, fractions, seed=split_seed))
    if not parts[split]:
        _fail(f"the {split} split of {data} is empty")
    try:
        chosen, rejected = numeric_table(parts[split], split)
        dims = {m.config.option_dim for m in models.values()}
        if dims != {chosen.shape[1]}:
            _fail(f"the models expect options of {sorted(dims)} features, {data} has {chosen.shape[1]}")
        eval_data = EvalData.from_records(parts[split], chosen, rejected)
        cfg = EvalConfig(context_sizes=sizes, n_tasks=n_tasks, seed=seed,
                         n_target=n_target if n_target is not None else max(targets))
        doc = evaluate_models(models, eval_data, cfg, task=task or data.stem,
                              runs=[str(r) for r in runs], data_file=str(data), split=split)
    except (ValueError, TypeError) as err:
        _fail(str(err))
    write_json(doc, out)
    # beside the JSON, same stem ("example-4.1.json" -> "example-4.1.csv": not with_suffix)
    csv_path, png_path = out.with_name(out.stem + ".csv"), out.with_name(out.stem + ".png")
    write_csv(doc, csv_path)
    plot_accuracy(doc, png_path)
    per_type = plot_per_type(doc, out.with_name(out.stem + "-per-type.png"))
    typer.echo(format_table(doc))
    typer.echo(f"wrote {out}, {csv_path}, {png_path}" + (f", {per_type}" if per_type else ""))
